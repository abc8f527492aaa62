//! The system crate's `main.rs`: the system's definition (services, their migrations and
//! consumers, the gateway's routes and policy) and the one binary that runs it.

use super::*;

/// The system crate's `main.rs`: the system's definition and the one binary.
/// A rate limit as a constant expression.
pub(crate) fn rate(requests: u32, per_secs: u64) -> TokenStream {
    let requests = Literal::u32_unsuffixed(requests);
    match per_secs {
        1 => quote!(RateLimit::per_second(#requests)),
        60 => quote!(RateLimit::per_minute(#requests)),
        3600 => quote!(RateLimit::per_hour(#requests)),
        _ => {
            let per_secs = Literal::u64_unsuffixed(per_secs);
            quote!(RateLimit { requests: #requests, per_secs: #per_secs })
        }
    }
}

/// `Option<RateLimit>` of the gateway: `Default` keeps the runtime's default.
pub(crate) fn gateway_limit(limit: Limit, default: TokenStream) -> TokenStream {
    match limit {
        Limit::Default => default,
        Limit::Off => quote!(None),
        Limit::Rate { requests, per_secs } => {
            let rate = rate(requests, per_secs);
            quote!(Some(#rate))
        }
    }
}

pub(crate) fn optional_u64(value: Option<u64>) -> TokenStream {
    match value {
        Some(n) => {
            let n = Literal::u64_unsuffixed(n);
            quote!(Some(#n))
        }
        None => quote!(None),
    }
}

/// A route's policy; `RoutePolicy::DEFAULT` when it changes nothing.
pub(crate) fn route_policy(limits: &crate::lower::RouteLimits) -> TokenStream {
    if *limits == crate::lower::RouteLimits::default() {
        return quote!(RoutePolicy::DEFAULT);
    }
    let limit = |limit: Limit| match limit {
        Limit::Default => quote!(RouteRateLimit::Inherit),
        Limit::Off => quote!(RouteRateLimit::Off),
        Limit::Rate { requests, per_secs } => {
            let rate = rate(requests, per_secs);
            quote!(RouteRateLimit::Limit(#rate))
        }
    };
    let (per_ip, per_user) = (limit(limits.per_ip), limit(limits.per_user));
    let (body, timeout) = (
        optional_u64(limits.body_limit),
        optional_u64(limits.timeout_ms),
    );
    quote!(RoutePolicy { per_ip: #per_ip, per_user: #per_user, body_limit_bytes: #body, timeout_ms: #timeout })
}

/// The gateway's policy; `GatewayPolicy::DEFAULT` when the spec changes nothing.
pub(crate) fn gateway_policy(gateway: &Gateway) -> TokenStream {
    let defaults = gateway.cors.is_none()
        && gateway.body_limit.is_none()
        && gateway.timeout_ms.is_none()
        && [gateway.per_ip, gateway.per_user, gateway.credentials]
            .iter()
            .all(|l| *l == Limit::Default);
    if defaults {
        return quote!(GatewayPolicy::DEFAULT);
    }
    let cors = match &gateway.cors {
        None => quote!(Cors::DISABLED),
        Some(cors) => {
            let list = |items: &[String]| {
                let items = items.iter().map(|i| lit(i));
                quote!(&[#(#items),*])
            };
            let (origins, methods, headers) = (
                list(&cors.origins),
                list(&cors.methods),
                list(&cors.headers),
            );
            let credentials = cors.credentials;
            let max_age = Literal::u64_unsuffixed(cors.max_age_secs);
            quote!(Cors { allowed_origins: #origins, allowed_methods: #methods, allowed_headers: #headers, allow_credentials: #credentials, max_age_secs: #max_age })
        }
    };
    let body = gateway
        .body_limit
        .map_or(quote!(GatewayPolicy::DEFAULT.body_limit_bytes), |n| {
            let n = Literal::u64_unsuffixed(n);
            quote!(#n)
        });
    let timeout = gateway
        .timeout_ms
        .map_or(quote!(GatewayPolicy::DEFAULT.timeout_ms), |n| {
            let n = Literal::u64_unsuffixed(n);
            quote!(#n)
        });
    let per_ip = gateway_limit(gateway.per_ip, quote!(GatewayPolicy::DEFAULT.per_ip));
    let per_user = gateway_limit(gateway.per_user, quote!(GatewayPolicy::DEFAULT.per_user));
    let credentials = gateway_limit(
        gateway.credentials,
        quote!(GatewayPolicy::DEFAULT.credential_per_ip),
    );
    quote!(GatewayPolicy { cors: #cors, body_limit_bytes: #body, timeout_ms: #timeout, per_ip: #per_ip, per_user: #per_user, credential_per_ip: #credentials })
}

pub(crate) fn system_main(ir: &crate::lower::Ir) -> TokenStream {
    let system = ir.system;
    let gateway = gateway_policy(&system.gateway);
    let name = lit(&system.name.value);
    let port = Literal::u16_unsuffixed(system.gateway.port);
    let prefix = lit(&system.gateway.prefix);
    let (access, refresh) = system.auth.as_ref().map_or((900, 2_592_000), |a| {
        (a.access_token_ttl, a.refresh_token_ttl)
    });
    let (access, refresh) = (
        Literal::i64_unsuffixed(access),
        Literal::i64_unsuffixed(refresh),
    );
    let routes = ir.gateway_routes.iter().map(|route| {
        let auth = if route.public { quote!(RouteAuth::Public) } else { quote!(RouteAuth::User) };
        let (method, path, service) = (lit(route.method.as_str()), lit(&route.path), lit(&route.service));
        let roles = route.roles.iter().map(|r| lit(r));
        let policy = route_policy(&route.limits);
        quote!(GatewayRoute { method: #method, path: #path, service: #service, auth: #auth, roles: &[#(#roles),*], policy: #policy })
    }).collect::<Vec<_>>();
    let services = system.services.iter().map(|service| {
        let krate = ident::crate_ident(&system.name.value, &service.name.value);
        // The auth service makes sure the first admin account exists when it starts.
        let grpc_gateway = if service.transport == Transport::Grpc {
            quote!(Some(#krate::gateway))
        } else {
            quote!(None)
        };
        let on_start = if service.uses == Some(Capability::Auth) {
            quote!(Some(svcgen_runtime::capability::auth::on_start))
        } else {
            quote!(None)
        };
        let consumers = if service.consumers.is_empty() {
            quote!(no_consumers)
        } else {
            quote!(#krate::consumers)
        };
        let migrations = if service.entities.is_empty() {
            quote!(&svcgen_runtime::db::Migrations::NONE)
        } else {
            quote!(&#krate::MIGRATIONS)
        };
        let jobs = if service.jobs.is_empty() {
            quote!(&[])
        } else {
            quote!(#krate::JOBS)
        };
        let capability = match service.uses {
            Some(Capability::Auth) => quote!(Some(&svcgen_runtime::capability::auth::TABLES)),
            Some(Capability::Notify) => quote!(Some(&svcgen_runtime::capability::notify::TABLES)),
            None => quote!(None),
        };
        quote! {
            ServiceDef {
                name: #krate::SERVICE,
                migrations: #migrations,
                capability: #capability,
                jobs: #jobs,
                routes: #krate::routes,
                consumers: #consumers,
                on_start: #on_start,
                grpc_gateway: #grpc_gateway,
            }
        }
    });
    let description = system
        .description
        .clone()
        .unwrap_or_else(|| format!("The {} system.", system.name.value));
    let crate_doc = inner_doc(&format!(
        "{description}\n\nOne binary runs the system in any mode: `{} run` (embedded: everything in one\nprocess, SQLite, in-process events), `gateway` and `serve <service>` (distributed). See\nthe workspace README for the environment each mode reads.",
        system.name.value
    ));
    // Import what the tables below name, and nothing else.
    let tables = quote!(#gateway #(#routes)*).to_string();
    let mut names: Vec<proc_macro2::Ident> = [
        "Cors",
        "GatewayPolicy",
        "GatewayRoute",
        "RateLimit",
        "RouteAuth",
        "RoutePolicy",
        "RouteRateLimit",
    ]
    .into_iter()
    .filter(|name| {
        name == &"GatewayRoute"
            || name == &"RouteAuth"
            || tables
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|word| word == *name)
    })
    .map(|name| format_ident!("{name}"))
    .collect();
    names.dedup();
    let gateway_imports = quote!(use svcgen_runtime::gateway::{#(#names),*};);
    let cli_imports = if ir.services.iter().all(|s| !s.consumers.is_empty()) {
        quote!(
            use svcgen_runtime::cli::{ServiceDef, SystemDef};
        )
    } else {
        quote!(
            use svcgen_runtime::cli::{no_consumers, ServiceDef, SystemDef};
        )
    };
    quote! {
        #crate_doc

        #cli_imports
        #gateway_imports

        /// Everything the runtime needs to know about this system.
        static SYSTEM: SystemDef = SystemDef {
            name: #name,
            default_port: #port,
            prefix: #prefix,
            access_token_ttl_secs: #access,
            refresh_token_ttl_secs: #refresh,
            routes: &[#(#routes),*],
            gateway: #gateway,
            services: &[#(#services),*],
        };

        fn main() -> std::process::ExitCode {
            svcgen_runtime::cli::main(&SYSTEM)
        }
    }
}
