//! `#[job]`: parses the attribute and the function, checks them, and generates the job's marker
//! type and its registration. It never schedules or runs anything.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::attr::{Attr, BLOCKED, DEPENDS_ON, ID, RETRIES, Symbol, TIMEOUT, WHEN};
use crate::ctxt::Ctxt;

const KEYS: &[Symbol] = &[DEPENDS_ON, WHEN, ID, BLOCKED, TIMEOUT, RETRIES];

/// What `#[job(...)]` was given.
struct JobArgs {
    depends_on: Vec<syn::Path>,
    when: Option<syn::Path>,
    id: Option<syn::LitStr>,
    blocked: bool,
    timeout_ms: Option<u64>,
    retries: u32,
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let err = syn::Error::new(
                Span::call_site(),
                "#[job] goes on a function: `#[job] async fn name(ctx: &Ctx) -> Result<T>` \
                 for an action job, or `#[job] fn name(ctx: &Ctx) -> ContainerJob`",
            );
            return with_error(item, err);
        }
    };
    let cx = Ctxt::new();
    let job_args = parse_args(&cx, args);
    check_signature(&cx, &func);
    match cx.check() {
        Ok(()) => generate(&func, &job_args),
        // Emit the function unchanged beside the errors so IDE completion keeps working.
        Err(err) => with_error(quote!(#func), err),
    }
}

pub(crate) fn with_error(item: TokenStream, err: syn::Error) -> TokenStream {
    let errors = err.into_compile_error();
    quote!(#item #errors)
}

fn parse_args(cx: &Ctxt, args: TokenStream) -> JobArgs {
    let mut depends_on = Attr::none(cx, DEPENDS_ON);
    let mut when = Attr::none(cx, WHEN);
    let mut id = Attr::none(cx, ID);
    let mut blocked = Attr::none(cx, BLOCKED);
    let mut timeout = Attr::none(cx, TIMEOUT);
    let mut retries = Attr::none(cx, RETRIES);

    let parser = syn::meta::parser(|meta| {
        let key = meta.path.clone();
        if key.is_ident(DEPENDS_ON.0) {
            let array: syn::ExprArray = meta.value()?.parse().map_err(|err| {
                syn::Error::new(err.span(), "expected `depends_on = [job_a, job_b]`")
            })?;
            let mut paths = Vec::new();
            for elem in array.elems {
                match elem {
                    syn::Expr::Path(p) if p.qself.is_none() => paths.push(p.path),
                    other => cx.error_spanned_by(
                        other,
                        "`depends_on` lists #[job] functions by name, e.g. `depends_on = [build]`",
                    ),
                }
            }
            depends_on.set(&key, paths);
        } else if key.is_ident(WHEN.0) {
            let expr: syn::Expr = meta.value()?.parse()?;
            match expr {
                syn::Expr::Path(p) if p.qself.is_none() => when.set(&key, p.path),
                other => cx.error_spanned_by(
                    other,
                    "`when` names a function `fn(&Ctx) -> bool`, e.g. `when = is_release`",
                ),
            }
        } else if key.is_ident(ID.0) {
            let lit: syn::LitStr = meta.value()?.parse()?;
            match check_id(&lit.value()) {
                Ok(()) => id.set(&key, lit),
                Err(msg) => cx.error_spanned_by(&lit, msg),
            }
        } else if key.is_ident(BLOCKED.0) {
            if meta.input.peek(syn::Token![=]) {
                let lit: syn::LitBool = meta.value()?.parse()?;
                blocked.set(&key, lit.value);
            } else {
                blocked.set(&key, true);
            }
        } else if key.is_ident(TIMEOUT.0) {
            let lit: syn::LitStr = meta.value()?.parse().map_err(|err| {
                syn::Error::new(err.span(), "expected a duration such as `timeout = \"10m\"`")
            })?;
            match parse_duration_ms(&lit.value()) {
                Ok(ms) => timeout.set(&key, ms),
                Err(msg) => cx.error_spanned_by(&lit, msg),
            }
        } else if key.is_ident(RETRIES.0) {
            let lit: syn::LitInt = meta.value()?.parse()?;
            match lit.base10_parse::<u32>() {
                Ok(n) => retries.set(&key, n),
                Err(err) => cx.syn_error(err),
            }
        } else {
            let name = key
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_else(|| quote!(#key).to_string());
            let expected = KEYS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ");
            cx.error_spanned_by(
                &key,
                format!("unknown `#[job]` argument `{name}`; expected one of: {expected}"),
            );
            // Skip the value so the remaining arguments are still checked.
            if meta.input.peek(syn::Token![=]) {
                meta.value()?.parse::<syn::Expr>()?;
            }
        }
        Ok(())
    });
    if let Err(err) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(err);
    }

    JobArgs {
        depends_on: depends_on.get().unwrap_or_default(),
        when: when.get(),
        id: id.get(),
        blocked: blocked.get().unwrap_or(false),
        timeout_ms: timeout.get(),
        retries: retries.get().unwrap_or(0),
    }
}

/// Job ids appear in file names, URLs and container names: keep them to a safe alphabet.
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("a job id cannot be empty".into());
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "invalid character {bad:?} in job id {id:?}; use letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

/// Parses durations such as `90s`, `10m`, `1h30m` or `500ms` into milliseconds.
fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("invalid duration {text:?}; write a number and a unit: `500ms`, `30s`, `10m`, `2h`, `1h30m`")
    };
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(factor)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(bad)?;
    }
    if total == 0 {
        return Err(format!("timeout {text:?} is zero; leave `timeout` out for no limit"));
    }
    Ok(total)
}

fn check_signature(cx: &Ctxt, func: &syn::ItemFn) {
    let sig = &func.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        cx.error_spanned_by(&sig.generics, "a #[job] function cannot be generic");
    }
    check_ctx_argument(cx, sig, "#[job]");
    if sig.asyncness.is_none() && matches!(sig.output, syn::ReturnType::Default) {
        cx.error_spanned_by(
            &sig.ident,
            "a #[job] that is not `async` must return `ContainerJob`; \
             make it `async fn` for an action job",
        );
    }
}

/// Both attributes take functions of one optional argument, the build context.
pub(crate) fn check_ctx_argument(cx: &Ctxt, sig: &syn::Signature, what: &str) {
    if sig.inputs.len() > 1 {
        cx.error_spanned_by(
            &sig.inputs,
            format!("a {what} function takes one argument, `ctx: &Ctx`"),
        );
    }
    for input in &sig.inputs {
        match input {
            syn::FnArg::Receiver(recv) => cx.error_spanned_by(
                recv,
                format!("a {what} function is a free function; it cannot take `self`"),
            ),
            syn::FnArg::Typed(pat) => {
                if !matches!(*pat.ty, syn::Type::Reference(_)) {
                    cx.error_spanned_by(
                        &pat.ty,
                        format!("a {what} function takes the context by reference: `ctx: &Ctx`"),
                    );
                }
            }
        }
    }
}

fn generate(func: &syn::ItemFn, args: &JobArgs) -> TokenStream {
    let name = &func.sig.ident;
    let vis = &func.vis;
    let docs: Vec<_> = func.attrs.iter().filter(|a| a.path().is_ident("doc")).collect();
    let attrs = &func.attrs;
    let mut sig = func.sig.clone();
    sig.ident = format_ident!("call", span = name.span());
    let block = &func.block;
    let private = quote!(::monkeyci_sdk::__private);

    let id = match &args.id {
        Some(lit) => lit.value(),
        None => name.to_string().trim_start_matches("r#").replace('_', "-"),
    };
    // The context is moved into the future, so it lives as long as the call borrowing it.
    let (ctx_param, action_call, builder_call) = if func.sig.inputs.is_empty() {
        (quote!(_ctx), quote!(#name::call()), quote!(#name::call()))
    } else {
        (quote!(ctx), quote!(#name::call(&ctx)), quote!(#name::call(ctx)))
    };
    let ret = match &func.sig.output {
        syn::ReturnType::Type(_, ty) => quote!(#ty),
        syn::ReturnType::Default => quote!(()),
    };
    let ret_span = func.sig.output.span();
    let (output_type, body) = if func.sig.asyncness.is_some() {
        (
            quote_spanned!(ret_span=> <#ret as #private::ActionResult>::Output),
            quote! {
                #private::JobBody::Action(|#ctx_param| ::std::boxed::Box::pin(async move {
                    #private::ActionResult::into_job_result(#action_call.await)
                }))
            },
        )
    } else {
        (
            quote_spanned!(ret_span=> <#ret as #private::IntoContainerJob>::Output),
            quote! {
                #private::JobBody::Container(|#ctx_param| {
                    #private::IntoContainerJob::into_container_job(#builder_call)
                })
            },
        )
    };
    let deps = args.depends_on.iter().map(|path| {
        quote_spanned!(path.span()=> #private::job_id(&#path))
    });
    let when = match &args.when {
        Some(path) => {
            let label = quote!(#path).to_string().replace(' ', "");
            quote_spanned!(path.span()=> ::core::option::Option::Some(#private::Condition {
                check: #path,
                name: #label,
            }))
        }
        None => quote!(::core::option::Option::None),
    };
    let blocked = args.blocked;
    let retries = args.retries;
    let timeout_ms = match args.timeout_ms {
        Some(ms) => quote!(::core::option::Option::Some(#ms)),
        None => quote!(::core::option::Option::None),
    };

    quote! {
        #(#docs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        #vis struct #name;

        impl #name {
            /// The job's function, as written.
            #(#attrs)*
            pub #sig #block
        }

        impl #private::JobMarker for #name {
            type Output = #output_type;
            const ID: &'static str = #id;
        }

        const _: () = {
            #private::inventory::submit! {
                #private::JobDef {
                    id: #id,
                    depends_on: || ::std::vec![#(#deps),*],
                    when: #when,
                    blocked: #blocked,
                    timeout_ms: #timeout_ms,
                    retries: #retries,
                    body: #body,
                    location: ::core::concat!(::core::file!(), ":", ::core::line!()),
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("10m"), Ok(600_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert!(parse_duration_ms("10").is_err());
        assert!(parse_duration_ms("ten minutes").is_err());
        assert!(parse_duration_ms("0s").is_err());
        assert!(parse_duration_ms("").is_err());
    }

    #[test]
    fn ids() {
        assert!(check_id("unit-test.v2").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("a/b").is_err());
    }
}
