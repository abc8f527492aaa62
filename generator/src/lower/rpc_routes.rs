//! Routes backed by an RPC, lowered: the RPC they call, and where each field of its request
//! comes from (the path, `with`, or the body or query string).

use super::resolved;
use crate::model::{Expr, Field, Rpc, RpcRoute, Service, System};

/// A route backed by an RPC, with its RPC resolved.
#[derive(Debug)]
pub struct RpcRouteIr<'m> {
    /// The route as the spec declares it.
    pub model: &'m RpcRoute,
    /// The service whose RPC it calls (its own, or one it calls).
    pub service: &'m Service,
    /// The RPC.
    pub rpc: &'m Rpc,
    /// Whether the RPC is the route's own service's (called in process).
    pub own: bool,
    /// The request fields the path fills, in path order.
    pub params: Vec<&'m Field>,
    /// The request fields `with` fills, with their values.
    pub with: Vec<(&'m Field, &'m Expr)>,
    /// The other request fields: the JSON body's, or the query string's for `GET` and
    /// `DELETE`.
    pub body: Vec<Field>,
    /// Its handler's name.
    pub handler: String,
}

pub(super) fn lower_rpc_routes<'m>(
    system: &'m System,
    service: &'m Service,
) -> Vec<RpcRouteIr<'m>> {
    let mut handlers: Vec<String> = Vec::new();
    service
        .rpc_routes
        .iter()
        .map(|route| {
            let (target, rpc) = resolved(
                crate::rpc::find_rpc(system, &route.target),
                &route.target.rpc,
            );
            let request = |name: &str| rpc.request.iter().find(|f| f.name.value == name);
            let params: Vec<&Field> = route
                .params()
                .into_iter()
                .map(|param| {
                    resolved(
                        request(param),
                        &crate::model::Name {
                            value: param.to_owned(),
                            span: route.span,
                        },
                    )
                })
                .collect();
            let with: Vec<(&Field, &Expr)> = route
                .with
                .iter()
                .map(|(name, expr)| (resolved(request(&name.value), name), expr))
                .collect();
            let given = |field: &Field| {
                params.iter().any(|p| p.name.value == field.name.value)
                    || with.iter().any(|(w, _)| w.name.value == field.name.value)
            };
            let body = rpc.request.iter().filter(|f| !given(f)).cloned().collect();
            // `call_<rpc>`, numbered from the second route that calls the same RPC.
            let base = format!("call_{}", crate::ident::to_snake(&rpc.name.value));
            let taken = handlers.iter().filter(|h| h.starts_with(&base)).count();
            let handler = if taken == 0 {
                base
            } else {
                format!("{base}_{}", taken + 1)
            };
            handlers.push(handler.clone());
            RpcRouteIr {
                model: route,
                service: target,
                rpc,
                own: target.name.value == service.name.value,
                params,
                with,
                body,
                handler,
            }
        })
        .collect()
}
