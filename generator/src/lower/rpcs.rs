//! RPCs lowered: what backs each (the auth account, a row, or SQL statements), and for each
//! statement its positional SQL, the value of every parameter and the targets of its rows.

use super::{event, record_of, resolved};
use crate::model::{
    Capability, CustomCode, Entity, Event, Field, Name, Rpc, RpcKind, Service, Statement, System,
    Type,
};
use std::collections::BTreeMap;

/// An RPC a service serves, with what backs it resolved.
#[derive(Debug)]
pub struct RpcIr<'m> {
    /// The RPC as the spec declares it.
    pub model: &'m Rpc,
    /// What answers it.
    pub backing: RpcBacking<'m>,
}

/// What answers an RPC.
#[derive(Debug)]
pub enum RpcBacking<'m> {
    /// The `auth` capability's account, by id, under the record name the spec gives it.
    Account(&'m Name),
    /// One row of this entity, by id.
    Row(&'m Entity),
    /// SQL statements, in order, in one transaction.
    Statements(Vec<StatementIr<'m>>),
    /// The user's code (`custom::<name>`), in one transaction.
    Custom(&'m CustomCode),
}

/// One SQL statement of an RPC, with its parameters and targets resolved.
#[derive(Debug)]
pub struct StatementIr<'m> {
    /// The statement as the spec writes it.
    pub model: &'m Statement,
    /// The SQL with `$1, $2, ...` in place of its `:name` parameters.
    pub sql: String,
    /// The parameter of each placeholder, in number order.
    pub params: Vec<String>,
    /// Every name the statement reads (its parameters, then the placeholders of its `expect`
    /// message), with its type and where its value comes from.
    pub declared: Vec<Param<'m>>,
    /// The response field its rows fill, with the fields of the record each row becomes (none
    /// for a scalar field).
    pub into: Option<(&'m Field, Option<Vec<Field>>)>,
    /// The event emitted for each returned row.
    pub emit: Option<&'m Event>,
}

/// A value an SQL statement reads.
#[derive(Debug)]
pub struct Param<'m> {
    /// Its name, `:name` in the SQL.
    pub name: String,
    /// Its type.
    pub ty: Type,
    /// Where its value comes from.
    pub source: ParamSource<'m>,
}

/// Where the value of an SQL parameter comes from.
#[derive(Debug)]
pub enum ParamSource<'m> {
    /// The time of the call (`:now`).
    Now,
    /// A fresh UUIDv7 per run (`:new_id`).
    NewId,
    /// A constant of the service.
    Constant(i64),
    /// A field of the request list element the statement runs for (boxed: a field is large
    /// beside the other sources).
    Element(Box<Field>),
    /// A field of the request.
    Request(&'m Field),
}

pub(super) fn lower_rpc<'m>(system: &'m System, service: &'m Service, rpc: &'m Rpc) -> RpcIr<'m> {
    let backing = match &rpc.kind {
        RpcKind::Get { record } if service.uses == Some(Capability::Auth) => {
            RpcBacking::Account(record)
        }
        RpcKind::Get { record } => RpcBacking::Row(resolved(service.entity(&record.value), record)),
        RpcKind::Custom(code) => RpcBacking::Custom(code),
        RpcKind::Sql(statements) => RpcBacking::Statements(
            statements
                .iter()
                .map(|statement| {
                    let (sql, params) = crate::rpc::positional_sql(&statement.sql);
                    let into = statement.into.as_ref().map(|into| {
                        let field = rpc.response.iter().find(|f| f.name.value == into.value);
                        let field = resolved(field, into);
                        let row_record = match field.ty.required() {
                            Type::List(inner) => record_of(inner),
                            Type::Message(name) => Some(name.as_str()),
                            _ => None,
                        };
                        let row = row_record.map(|record| resolved(service.record(record), into));
                        (field, row)
                    });
                    StatementIr {
                        model: statement,
                        declared: declared_params(service, rpc, statement, &params),
                        sql,
                        params,
                        into,
                        emit: statement
                            .emit
                            .as_ref()
                            .map(|name| resolved(event(system, name), name)),
                    }
                })
                .collect(),
        ),
    };
    RpcIr {
        model: rpc,
        backing,
    }
}

/// The names `statement` reads: its `params`, then the placeholders of its `expect` message.
pub(super) fn declared_params<'m>(
    service: &'m Service,
    rpc: &'m Rpc,
    statement: &'m Statement,
    params: &[String],
) -> Vec<Param<'m>> {
    let mut names = params.to_vec();
    if let Some(expect) = &statement.expect {
        for placeholder in crate::model::placeholders(&expect.message) {
            if !names.iter().any(|n| n == placeholder) {
                names.push(placeholder.to_owned());
            }
        }
    }
    let scope: BTreeMap<String, Type> = crate::rpc::statement_scope(service, rpc, statement);
    let element_fields = statement
        .for_each
        .as_ref()
        .and_then(|each| crate::rpc::for_each_fields(service, rpc, &each.value))
        .unwrap_or_default();
    names
        .into_iter()
        .map(|name| {
            let constant = service.constants.iter().find(|(n, _)| n.value == name);
            let element = element_fields.iter().find(|f| f.name.value == name);
            let source = match (name.as_str(), constant, element) {
                ("now", _, _) => ParamSource::Now,
                ("new_id", _, _) => ParamSource::NewId,
                (_, Some((_, value)), _) => ParamSource::Constant(*value),
                (_, None, Some(field)) => ParamSource::Element(Box::new(field.clone())),
                (_, None, None) => {
                    let field = rpc.request.iter().find(|f| f.name.value == name);
                    ParamSource::Request(resolved_text(field, &name, statement))
                }
            };
            Param {
                ty: scope.get(&name).cloned().unwrap_or(Type::INT),
                name,
                source,
            }
        })
        .collect()
}

/// Like [`resolved`], for a name found in a statement's SQL text.
pub(super) fn resolved_text<T>(found: Option<T>, name: &str, statement: &Statement) -> T {
    found.unwrap_or_else(|| {
        panic!(
            "validation let through `:{name}` at {}:{}, which names nothing",
            statement.span.line, statement.span.col
        )
    })
}
