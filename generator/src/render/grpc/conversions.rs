//! Conversions between the plain types of a service crate and the protobuf messages of a
//! contract (`ToProto`, `FromProto`), field by field.

use super::*;

impl Grpc<'_> {
    /// The protobuf form of `value` (a reference to a plain value of type `from`) for a field
    /// of type `to` in a contract.
    pub(super) fn plain_to_proto(
        &self,
        value: &TokenStream,
        from: &Type,
        to: &Type,
    ) -> TokenStream {
        match (from, to) {
            (Type::Optional(_), Type::Optional(b)) if matches!(b.as_ref(), Type::List(_)) => {
                quote!(ToProto::to_proto(#value).unwrap_or_default())
            }
            (Type::Optional(_), _) => quote!(ToProto::to_proto(#value)),
            (_, Type::Optional(b)) if matches!(b.as_ref(), Type::List(_)) => {
                quote!(ToProto::to_proto(#value))
            }
            (_, Type::Optional(_)) => quote!(Some(ToProto::to_proto(#value))),
            (_, to) if boxed_in_option(to) => quote!(Some(ToProto::to_proto(#value))),
            _ => quote!(ToProto::to_proto(#value)),
        }
    }

    /// `From`/`To` protobuf conversions for every pair the crate needs (computed when the
    /// service was lowered).
    pub fn conversions(&self) -> TokenStream {
        self.pairs
            .iter()
            .map(|(pair, fields)| self.conversion(pair, fields))
            .collect()
    }

    pub(super) fn conversion(&self, pair: &Pair, fields: &Conversion) -> TokenStream {
        let (plain_fields, proto_fields) = (&fields.plain, &fields.proto);
        let plain = rust_type(&pair.record);
        let proto_ty = rust_type(&pair.proto_record);
        let proto = proto_module(self.system, &pair.proto_service);
        match pair.direction {
            Direction::ToProto => {
                let mut complete = true;
                let fields: Vec<TokenStream> = proto_fields
                    .iter()
                    .filter_map(|pf| {
                        let Some(df) = plain_fields.iter().find(|f| f.name.value == pf.name.value)
                        else {
                            complete = false;
                            return None;
                        };
                        let ident = rust_ident(&pf.name.value);
                        let source = rust_ident(&df.name.value);
                        let value = self.plain_to_proto(&quote!(&self.#source), &df.ty, &pf.ty);
                        Some(quote!(#ident: #value,))
                    })
                    .collect();
                let rest = (!complete).then(|| quote!(..Default::default()));
                quote! {
                    impl ToProto<#proto::#proto_ty> for #plain {
                        fn to_proto(&self) -> #proto::#proto_ty {
                            #proto::#proto_ty { #(#fields)* #rest }
                        }
                    }
                }
            }
            Direction::FromProto => {
                let fields = plain_fields.iter().map(|df| {
                    let ident = rust_ident(&df.name.value);
                    match proto_fields.iter().find(|f| f.name.value == df.name.value) {
                        Some(pf) => {
                            let source = rust_ident(&pf.name.value);
                            let value = proto_to_plain(
                                &quote!(proto.#source),
                                &pf.ty,
                                &df.ty,
                                &pf.name.value,
                            );
                            quote!(#ident: #value,)
                        }
                        None => quote!(#ident: None,),
                    }
                });
                quote! {
                    impl FromProto<#proto::#proto_ty> for #plain {
                        fn from_proto(proto: #proto::#proto_ty) -> Result<Self, tonic::Status> {
                            Ok(#plain { #(#fields)* })
                        }
                    }
                }
            }
        }
    }
}

/// The plain value of type `to` from `value` (an owned protobuf value of spec type `from`).
pub(super) fn proto_to_plain(
    value: &TokenStream,
    from: &Type,
    to: &Type,
    name: &str,
) -> TokenStream {
    let name = lit(name);
    match FromProtoShape::of(from, to) {
        FromProtoShape::Same => value.clone(),
        FromProtoShape::SomeSame => quote!(Some(#value)),
        FromProtoShape::Converted => quote!(FromProto::from_proto(#value)?),
        FromProtoShape::SomeConverted => quote!(Some(FromProto::from_proto(#value)?)),
        FromProtoShape::Required => {
            quote!(FromProto::from_proto(rpc::required(#name, #value)?)?)
        }
    }
}

/// How a protobuf value becomes a plain one (see [`proto_to_plain`]); also what the code needs
/// in scope for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FromProtoShape {
    /// The value as it is.
    Same,
    /// The value, wrapped in `Some`.
    SomeSame,
    /// `FromProto::from_proto(value)?`.
    Converted,
    /// `Some(FromProto::from_proto(value)?)`.
    SomeConverted,
    /// A message or timestamp that must be present (`rpc::required`), converted.
    Required,
}

impl FromProtoShape {
    /// The shape for a protobuf value of spec type `from` wanted as plain type `to`.
    pub(super) fn of(from: &Type, to: &Type) -> FromProtoShape {
        // An optional list is a plain repeated field in protobuf: its value is the list.
        let from = match from {
            Type::Optional(inner) if matches!(inner.as_ref(), Type::List(_)) => inner.as_ref(),
            other => other,
        };
        if same_in_both_forms(from) && same_in_both_forms(to) && from.required() == to.required() {
            return match (from, to) {
                (Type::Optional(_), _) | (_, Type::Optional(_)) if from != to => {
                    FromProtoShape::SomeSame
                }
                _ => FromProtoShape::Same,
            };
        }
        match (from, to) {
            (f, Type::Optional(_)) if boxed_in_option(f) => FromProtoShape::Converted,
            (f, _) if boxed_in_option(f) => FromProtoShape::Required,
            (Type::List(_), Type::Optional(_)) => FromProtoShape::SomeConverted,
            (Type::Optional(_), _) => FromProtoShape::Converted,
            (_, Type::Optional(_)) => FromProtoShape::SomeConverted,
            _ => FromProtoShape::Converted,
        }
    }

    /// What the code of this shape names from the runtime's `rpc` module.
    pub(super) fn uses(self) -> RpcUses {
        match self {
            FromProtoShape::Same | FromProtoShape::SomeSame => RpcUses::default(),
            FromProtoShape::Converted | FromProtoShape::SomeConverted => RpcUses::FROM_PROTO,
            FromProtoShape::Required => RpcUses::FROM_PROTO | RpcUses::MODULE,
        }
    }
}

/// Whether plain and protobuf values of a type are the same Rust type (numbers, flags, text).
pub(super) fn same_in_both_forms(ty: &Type) -> bool {
    match ty {
        Type::Int { .. } | Type::Bool | Type::Text | Type::Email | Type::String { .. } => true,
        Type::List(inner) | Type::Optional(inner) => same_in_both_forms(inner),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn optional(ty: Type) -> Type {
        Type::Optional(Box::new(ty))
    }

    fn list(ty: Type) -> Type {
        Type::List(Box::new(ty))
    }

    #[test]
    fn protobuf_values_become_plain_ones_in_the_fewest_steps() {
        let text = Type::Text;
        let message = Type::Message("line".into());
        for (from, to, shape) in [
            (Type::INT, Type::INT, FromProtoShape::Same),
            (
                text.clone(),
                optional(text.clone()),
                FromProtoShape::SomeSame,
            ),
            // An optional list is a plain repeated field.
            (
                optional(list(Type::INT)),
                list(Type::INT),
                FromProtoShape::Same,
            ),
            (Type::Uuid, Type::Uuid, FromProtoShape::Converted),
            (
                Type::Uuid,
                optional(Type::Uuid),
                FromProtoShape::SomeConverted,
            ),
            (message.clone(), message.clone(), FromProtoShape::Required),
            (
                message.clone(),
                optional(message.clone()),
                FromProtoShape::Converted,
            ),
            (Type::Timestamp, Type::Timestamp, FromProtoShape::Required),
            (
                list(message.clone()),
                optional(list(message)),
                FromProtoShape::SomeConverted,
            ),
        ] {
            assert_eq!(FromProtoShape::of(&from, &to), shape, "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn each_shape_names_what_its_code_uses() {
        assert_eq!(FromProtoShape::Same.uses(), RpcUses::default());
        assert_eq!(FromProtoShape::Converted.uses(), RpcUses::FROM_PROTO);
        assert_eq!(
            FromProtoShape::Required.uses(),
            RpcUses::FROM_PROTO | RpcUses::MODULE
        );
        let code = proto_to_plain(&quote!(v), &Type::Timestamp, &Type::Timestamp, "at");
        assert_eq!(
            code.to_string(),
            "FromProto :: from_proto (rpc :: required (\"at\" , v) ?) ?"
        );
    }
}
