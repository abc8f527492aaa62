//! The steps of routes other than `create` (whose steps make the row, see the saga): calls of
//! other services for the signed-in caller, run before the route reads or changes its row. A
//! change ends the saga in its own transaction (its recorded undos forgotten with the change),
//! and a change that fails undoes the steps, newest first.

use super::*;

/// What a handler of a route with steps adds, all empty for a route without.
#[derive(Default)]
pub(crate) struct StepsOf {
    /// The handler's `deadline: rpc::Deadline` parameter.
    pub deadline_param: TokenStream,
    /// The steps, run in order before the read or the change.
    pub run: TokenStream,
    /// The attempt's `saga: &rpc::Saga` parameter.
    pub saga_param: TokenStream,
    /// The attempt's saga argument.
    pub saga_arg: TokenStream,
    /// The end of the saga in the attempt's transaction.
    pub succeed: TokenStream,
    /// Whether there are steps.
    present: bool,
}

impl StepsOf {
    /// The steps of `lowered` (a route other than `create`), rendered by `grpc`.
    pub(crate) fn of(grpc: &crate::render::grpc::Grpc, lowered: &RouteIr) -> StepsOf {
        let route = lowered.model;
        if route.steps.is_empty() || route.operation == Operation::Create {
            return StepsOf::default();
        }
        let changes = matches!(route.operation, Operation::Update | Operation::Delete);
        StepsOf {
            deadline_param: quote!(deadline: rpc::Deadline,),
            run: grpc.steps(lowered),
            saga_param: if changes {
                quote!(, saga: &rpc::Saga)
            } else {
                TokenStream::new()
            },
            saga_arg: if changes {
                quote!(, &saga)
            } else {
                TokenStream::new()
            },
            succeed: if changes {
                quote!(saga.succeed(&mut tx).await?;)
            } else {
                TokenStream::new()
            },
            present: true,
        }
    }

    /// The value of `result` (an `ApiResult`), or its error answered: with steps, once they
    /// are undone.
    pub(crate) fn settle(&self, result: TokenStream) -> TokenStream {
        if self.present {
            quote! {
                match #result {
                    Ok(value) => value,
                    Err(error) => return Err(saga.fail(error).await),
                }
            }
        } else {
            quote!(#result?)
        }
    }
}
