//! Calls of consumers and jobs: other services' RPCs, called in order before the transaction of
//! the other actions (a call must not hold the database while it waits), each response field
//! that a later action reads bound to a plain local.

use super::*;
use crate::lower::{ActionIr, CallActionIr, ConsumerValue};

/// How long the calls of one event or one job run may take, all together.
const CALLS_TIMEOUT_SECS: u64 = 30;

/// The local that holds field `field` of the response of the call named `call`.
pub fn answer_ident(call: &str, field: &str) -> proc_macro2::Ident {
    format_ident!("answer_{}_{}", call, field)
}

/// The calls among `actions`, in order.
pub fn calls_of<'a, 'm>(actions: &'a [ActionIr<'m>]) -> Vec<&'a CallActionIr<'m>> {
    actions
        .iter()
        .filter_map(|action| match action {
            ActionIr::Call(call) => Some(call),
            _ => None,
        })
        .collect()
}

/// The calls of a consumer or a job, made: what they answer.
pub struct Answers {
    /// The statements that make the calls in order, ending in
    /// `Ok::<_, tonic::Status>((answer, ...))`, a tuple of the locals later actions read: the
    /// body of an `async` block.
    pub body: TokenStream,
    /// The tuple's locals, in order.
    pub locals: Vec<proc_macro2::Ident>,
    /// Their plain types, in order.
    pub types: Vec<TokenStream>,
    /// Whether every one of them is `Copy` (so is the tuple).
    pub copy: bool,
}

impl Grpc<'_> {
    /// The calls among `actions` as one `async` block (none without calls), with the values of
    /// their requests rendered by `value` (a consumer's event fields, literals, `$now`, earlier
    /// answers).
    pub fn answers(
        &self,
        actions: &[ActionIr],
        value: impl Fn(&ConsumerValue, &Type) -> TokenStream,
    ) -> Option<Answers> {
        let calls = calls_of(actions);
        if calls.is_empty() {
            return None;
        }
        let mut locals = Vec::new();
        let mut types = Vec::new();
        let mut copy = true;
        let mut statements = Vec::new();
        for call in &calls {
            let (target, rpc) = (call.service, call.rpc);
            let proto = proto_module(self.system, &target.name.value);
            let request_ty = format_ident!("{}Request", rpc.name.value);
            let fields = call.with.iter().map(|(field, given)| {
                let ident = rust_ident(&field.name.value);
                let plain = value(given, &given.ty);
                let converted = self.plain_to_proto(&quote!(&(#plain)), &given.ty, &field.ty);
                quote!(#ident: #converted,)
            });
            let rest = (call.with.len() < rpc.request.len()).then(|| quote!(..Default::default()));
            let request = quote!(#proto::#request_ty { #(#fields)* #rest });
            let service = lit(&target.name.value);
            let idempotent = rpc.idempotent || matches!(rpc.kind, RpcKind::Get { .. });
            let send = self.send_to(target, rpc);
            let invocation = quote!(calls.call(#service, #idempotent, #request, #send).await?);
            if call.read.is_empty() {
                statements.push(quote!(#invocation;));
                continue;
            }
            statements.push(quote!(let answer = #invocation;));
            let name = call.name.map_or("", |n| n.as_str());
            for field in &call.read {
                let local = answer_ident(name, &field.name.value);
                let ident = rust_ident(&field.name.value);
                let source = if proto_copy(&field.ty) {
                    quote!(answer.#ident)
                } else {
                    quote!(answer.#ident.clone())
                };
                let plain = proto_to_plain(&source, &field.ty, &field.ty, &field.name.value);
                let ty = rust_field_type(&field.ty);
                statements.push(quote!(let #local: #ty = #plain;));
                // Handed to the transaction only when its actions read it.
                if call.handed.iter().any(|h| h.name.value == field.name.value) {
                    locals.push(local);
                    types.push(ty);
                    copy &= is_copy(&field.ty);
                }
            }
        }
        let reads_now = calls
            .iter()
            .flat_map(|call| &call.with)
            .any(|(_, given)| matches!(given.expr, Expr::Now { .. }));
        let now = reads_now.then(|| quote!(let now = db::now();));
        let timeout = Literal::u64_unsuffixed(CALLS_TIMEOUT_SECS);
        let body = quote! {
            #now
            let calls = rpc::Outgoing::new(
                &ctx.settings,
                None,
                rpc::Deadline::after(std::time::Duration::from_secs(#timeout)),
            );
            #(#statements)*
            Ok::<_, tonic::Status>((#(#locals,)*))
        };
        Some(Answers {
            body,
            locals,
            types,
            copy,
        })
    }
}
