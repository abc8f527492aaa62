//! What a service crate's RPC code names from the runtime's `rpc` module, known from the IR
//! before any of it is rendered: the module itself and the `FromProto` and `ToProto` traits,
//! so that the crate imports exactly what it uses. Each rule mirrors what the renderer beside
//! it writes, and shares its decisions ([`FromProtoShape`]).

use super::*;
use crate::lower::{ValueIr, ValueSource};
use std::ops::{BitOr, BitOrAssign};

/// Names of `svcgen_runtime::rpc` that generated code uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RpcUses {
    /// `rpc::...` paths.
    pub module: bool,
    /// The `FromProto` trait.
    pub from_proto: bool,
    /// The `ToProto` trait.
    pub to_proto: bool,
}

impl RpcUses {
    /// The module only.
    pub const MODULE: RpcUses = RpcUses {
        module: true,
        from_proto: false,
        to_proto: false,
    };
    /// `FromProto` only.
    pub const FROM_PROTO: RpcUses = RpcUses {
        module: false,
        from_proto: true,
        to_proto: false,
    };
    /// `ToProto` only.
    pub const TO_PROTO: RpcUses = RpcUses {
        module: false,
        from_proto: false,
        to_proto: true,
    };

    /// `uses` when `condition` holds, else nothing.
    fn when(condition: bool, uses: RpcUses) -> RpcUses {
        if condition { uses } else { RpcUses::default() }
    }
}

impl BitOr for RpcUses {
    type Output = RpcUses;

    fn bitor(self, other: RpcUses) -> RpcUses {
        RpcUses {
            module: self.module || other.module,
            from_proto: self.from_proto || other.from_proto,
            to_proto: self.to_proto || other.to_proto,
        }
    }
}

impl BitOrAssign for RpcUses {
    fn bitor_assign(&mut self, other: RpcUses) {
        *self = *self | other;
    }
}

impl FromIterator<RpcUses> for RpcUses {
    fn from_iter<I: IntoIterator<Item = RpcUses>>(iter: I) -> RpcUses {
        iter.into_iter().fold(RpcUses::default(), BitOr::bitor)
    }
}

impl Grpc<'_> {
    /// Everything the service crate's RPC code uses: its servers, transcoder, step routes and
    /// conversions.
    pub fn uses(&self) -> RpcUses {
        self.server_uses()
            | self.api_server_uses()
            | self.transcoder_uses()
            | self.saga_uses()
            | self.conversion_uses()
            | self.calls_uses()
            | self.rpc_routes_uses()
    }

    /// [`rpc_routes`](Self::rpc_routes): requests built from plain values, answers read back,
    /// `rpc::Deadline` and the failures mapped.
    fn rpc_routes_uses(&self) -> RpcUses {
        self.lowered
            .rpc_routes
            .iter()
            .map(|route| {
                RpcUses::MODULE
                    | RpcUses::FROM_PROTO
                    | RpcUses::when(!route.rpc.request.is_empty(), RpcUses::TO_PROTO)
            })
            .collect()
    }

    /// [`answers`](Self::answers) of each consumer and job that calls: `rpc::Outgoing`,
    /// requests built from plain values, the answers read back.
    fn calls_uses(&self) -> RpcUses {
        let consumers = self.lowered.consumers.iter().map(|c| c.actions.as_slice());
        let jobs = self.lowered.jobs.iter().map(|j| j.actions.as_slice());
        consumers
            .chain(jobs)
            .flat_map(super::calls::calls_of)
            .map(|call| {
                let requests = RpcUses::when(!call.with.is_empty(), RpcUses::TO_PROTO);
                let answers: RpcUses = call
                    .read
                    .iter()
                    .map(|field| FromProtoShape::of(&field.ty, &field.ty).uses())
                    .collect();
                RpcUses::MODULE | requests | answers
            })
            .collect()
    }

    /// [`server`](Self::server): `rpc::Incoming` and `rpc::serve`, ids and rows converted, SQL
    /// parameters read from the request, response fields filled from rows.
    fn server_uses(&self) -> RpcUses {
        if self.lowered.rpcs.is_empty() {
            return RpcUses::default();
        }
        let each = self.lowered.rpcs.iter().map(|rpc| match &rpc.backing {
            RpcBacking::Account(_) | RpcBacking::Row(_) => RpcUses::FROM_PROTO | RpcUses::TO_PROTO,
            RpcBacking::Custom(_) => RpcUses::default(),
            RpcBacking::Statements(statements) => statements
                .iter()
                .map(|statement| {
                    let params = statement
                        .declared
                        .iter()
                        .map(|param| match &param.source {
                            ParamSource::Element(field) => {
                                FromProtoShape::of(&field.ty, &field.ty).uses()
                            }
                            ParamSource::Request(field) => {
                                FromProtoShape::of(&field.ty, &field.ty).uses()
                            }
                            ParamSource::Now | ParamSource::NewId | ParamSource::Constant(_) => {
                                RpcUses::default()
                            }
                        })
                        .collect::<RpcUses>();
                    let filled = match &statement.into {
                        Some((_, Some(row))) => RpcUses::when(!row.is_empty(), RpcUses::TO_PROTO),
                        Some((_, None)) => RpcUses::TO_PROTO,
                        None => RpcUses::default(),
                    };
                    params | filled
                })
                .collect(),
        });
        RpcUses::MODULE | each.collect()
    }

    /// [`api_server`](Self::api_server): each route's request read, its row or page sent.
    fn api_server_uses(&self) -> RpcUses {
        let routes = &self.lowered.route_rpcs;
        if routes.is_empty() {
            return RpcUses::default();
        }
        let each = routes.iter().map(|rpc| {
            let fields = |fields: &[Field]| -> RpcUses {
                fields
                    .iter()
                    .map(|f| {
                        let carried = f.ty.required().clone();
                        FromProtoShape::of(&carried, &carried).uses()
                    })
                    .collect()
            };
            match rpc.route.operation {
                Operation::Create => {
                    let read: RpcUses = rpc
                        .request
                        .iter()
                        .map(|f| FromProtoShape::of(&f.ty, &f.ty).uses())
                        .collect();
                    read | RpcUses::TO_PROTO
                }
                Operation::List => RpcUses::TO_PROTO,
                Operation::Get => RpcUses::FROM_PROTO | RpcUses::TO_PROTO,
                Operation::Update => fields(&rpc.input) | RpcUses::FROM_PROTO | RpcUses::TO_PROTO,
                Operation::Delete => RpcUses::FROM_PROTO,
            }
        });
        RpcUses::MODULE | each.collect()
    }

    /// [`gateway_adapter`](Self::gateway_adapter): inputs sent as messages, rows and pages read
    /// back.
    fn transcoder_uses(&self) -> RpcUses {
        let routes = &self.lowered.route_rpcs;
        if self.service.transport != Transport::Grpc {
            return RpcUses::default();
        }
        let each = routes.iter().map(|rpc| match rpc.route.operation {
            Operation::Create => {
                RpcUses::FROM_PROTO | RpcUses::when(!rpc.request.is_empty(), RpcUses::TO_PROTO)
            }
            Operation::List => RpcUses::FROM_PROTO,
            Operation::Get | Operation::Update => RpcUses::FROM_PROTO | RpcUses::TO_PROTO,
            Operation::Delete => RpcUses::TO_PROTO,
        });
        RpcUses::MODULE | each.collect()
    }

    /// [`create_handler`](Self::create_handler) of each route with steps: the saga's `rpc`
    /// items, requests built from plain values, step results read into the row.
    fn saga_uses(&self) -> RpcUses {
        self.lowered
            .routes
            .iter()
            .filter(|route| route.model.has_steps() || !route.model.steps.is_empty())
            .map(|route| {
                let from_result = |value: &ValueIr, wanted: &Type| match &value.source {
                    ValueSource::StepResult { field, .. } => {
                        FromProtoShape::of(&field.ty, wanted).uses()
                    }
                    ValueSource::Direct | ValueSource::Input(_) | ValueSource::PathParam(_) => {
                        RpcUses::default()
                    }
                };
                let calls = route.steps.iter().flat_map(|step| {
                    let call = match &step.action {
                        StepActionIr::Call(call) => Some(call),
                        StepActionIr::Pay { .. } => None,
                    };
                    call.into_iter().chain(step.undo.as_ref())
                });
                let requests = calls
                    .flat_map(|call| &call.with)
                    .map(|(_, value)| match &value.source {
                        ValueSource::StepResult { .. } => RpcUses::default(),
                        ValueSource::Direct | ValueSource::Input(_) | ValueSource::PathParam(_) => {
                            RpcUses::TO_PROTO
                        }
                    })
                    .collect::<RpcUses>();
                let payments = route
                    .steps
                    .iter()
                    .map(|step| match &step.action {
                        StepActionIr::Pay { amount_cents, card } => {
                            from_result(amount_cents, &Type::INT)
                                | card
                                    .as_ref()
                                    .map_or(RpcUses::default(), |c| from_result(c, &c.ty))
                        }
                        StepActionIr::Call(_) => RpcUses::default(),
                    })
                    .collect::<RpcUses>();
                let set = route
                    .set
                    .iter()
                    .map(|(column, value)| {
                        let column = route.entity.column(&column.value);
                        column.map_or(RpcUses::default(), |c| from_result(value, &c.ty))
                    })
                    .collect::<RpcUses>();
                RpcUses::MODULE | requests | payments | set
            })
            .collect()
    }

    /// [`conversions`](Self::conversions): the traits implemented, and what their fields need.
    fn conversion_uses(&self) -> RpcUses {
        self.pairs
            .iter()
            .map(|(pair, fields)| match pair.direction {
                Direction::ToProto => RpcUses::TO_PROTO,
                Direction::FromProto => {
                    let matched = fields.plain.iter().filter_map(|plain| {
                        let proto = fields
                            .proto
                            .iter()
                            .find(|p| p.name.value == plain.name.value);
                        proto.map(|proto| FromProtoShape::of(&proto.ty, &plain.ty).uses())
                    });
                    RpcUses::FROM_PROTO | matched.collect()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spec of the repository that validates.
    fn valid_specs() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut paths: Vec<std::path::PathBuf> = ["examples", "tests/systems"]
            .iter()
            .flat_map(|dir| std::fs::read_dir(root.join(dir)).expect("the folder exists"))
            .map(|entry| entry.expect("a readable entry").path())
            .collect();
        let pass = std::fs::read_dir(root.join("tests/specs/pass")).expect("the folder exists");
        paths.extend(pass.map(|entry| entry.expect("a readable entry").path().join("spec.yaml")));
        paths.sort();
        paths
            .into_iter()
            .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
            .map(|path| {
                let source = std::fs::read_to_string(&path).expect("a readable spec");
                (path.display().to_string(), source)
            })
            .collect()
    }

    /// What the rendered RPC code of a crate names, read from its text: the oracle the
    /// data-driven rules are checked against.
    fn named_in(code: &str) -> RpcUses {
        RpcUses {
            module: code.contains("rpc ::"),
            from_proto: code.contains("FromProto"),
            to_proto: code.contains("ToProto"),
        }
    }

    #[test]
    fn the_imports_known_from_the_ir_are_exactly_what_the_rendered_code_names() {
        let mut services = 0;
        for (path, source) in valid_specs() {
            let checked = crate::check(&source).unwrap_or_else(|e| panic!("{path}: {e:?}"));
            let ir = crate::lower::lower(&checked.system);
            for lowered in ir.services.iter().filter(|s| s.model.uses.is_none()) {
                let grpc = Grpc::new(ir.system, lowered);
                let mut code = TokenStream::new();
                for parts in [grpc.server(), grpc.api_server()].into_iter().flatten() {
                    code.extend(parts.items);
                }
                code.extend(grpc.gateway_adapter());
                for route in &lowered.routes {
                    if route.model.has_steps() {
                        code.extend(grpc.create_handler(route));
                    } else if !route.model.steps.is_empty() {
                        code.extend(grpc.steps(route));
                    }
                }
                code.extend(grpc.rpc_routes());
                let consumers = lowered.consumers.iter().map(|c| c.actions.as_slice());
                let jobs = lowered.jobs.iter().map(|j| j.actions.as_slice());
                for actions in consumers.chain(jobs) {
                    if let Some(answers) = grpc.answers(actions, |_, _| quote!(value)) {
                        code.extend(answers.body);
                    }
                }
                code.extend(grpc.conversions());
                assert_eq!(
                    grpc.uses(),
                    named_in(&code.to_string()),
                    "{path}: service `{}`",
                    lowered.model.name.value
                );
                services += 1;
            }
        }
        assert!(services > 5, "only {services} services were checked");
    }
}
