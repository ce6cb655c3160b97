//! `#[job]`: parses the attribute and the function, checks them, and generates the job's marker
//! type and its registration. It never schedules or runs anything.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::attr::{ALLOW_FAILURE, Attr, BLOCKED, DEPENDS_ON, ID, IDEMPOTENT, RETRIES, RUNS, Symbol, TIMEOUT, WHEN};
use crate::ctxt::Ctxt;

const KEYS: &[Symbol] = &[DEPENDS_ON, WHEN, ID, BLOCKED, TIMEOUT, RETRIES, IDEMPOTENT, ALLOW_FAILURE, RUNS];

/// The values of `runs = ...`, and the `monkeyci_sdk::Runs` variant each names.
const RUNS_VALUES: &[(&str, &str)] = &[("on_success", "OnSuccess"), ("on_failure", "OnFailure"), ("always", "Always")];

/// What `#[job(...)]` was given.
struct JobArgs {
    depends_on: Vec<syn::Path>,
    when: Option<syn::Path>,
    id: Option<syn::LitStr>,
    blocked: bool,
    timeout_ms: Option<u64>,
    retries: u32,
    /// `idempotent = false`, as written (it only applies to action jobs).
    idempotent: Option<syn::LitBool>,
    allow_failure: bool,
    /// The `Runs` variant, as in [`RUNS_VALUES`].
    runs: Option<&'static str>,
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let err = not_a_function(
                &item,
                "#[job] goes on a function: `#[job] async fn name(ctx: &Ctx) -> Result<T>` \
                 for an action job, or `#[job] fn name(ctx: &Ctx) -> ContainerJob`",
            );
            return with_error(item, err);
        }
    };
    let cx = Ctxt::new();
    let job_args = parse_args(&cx, args);
    if let Some(lit) = &job_args.idempotent
        && func.sig.asyncness.is_none()
    {
        cx.error_spanned_by(
            lit,
            "`idempotent` applies to action jobs (`async fn`); a container job is never started twice on resume",
        );
    }
    let signature = Ctxt::new();
    check_signature(&signature, &func);
    let signature_ok = match signature.check() {
        Ok(()) => true,
        Err(err) => {
            cx.syn_error(err);
            false
        }
    };
    // Emitted beside any errors, so IDE completion keeps working and the jobs naming this one
    // (`depends_on`, `ctx.output`) get no errors of their own. Bad arguments are left at their
    // defaults; a bad signature leaves the job unregistered, since nothing could call it.
    let expanded = if signature_ok {
        generate(&func, &job_args, true)
    } else if func.sig.receiver().is_some() {
        // Probably inside an `impl` block, where the marker struct cannot go.
        quote!(#func)
    } else {
        generate(&func, &job_args, false)
    };
    match cx.check() {
        Ok(()) => expanded,
        Err(err) => with_error(expanded, err),
    }
}

pub(crate) fn with_error(item: TokenStream, err: syn::Error) -> TokenStream {
    let errors = err.into_compile_error();
    quote!(#item #errors)
}

/// The error for an attribute put on something other than a function, placed at the item's
/// keyword (`struct`, `const`, ...) rather than on the attribute.
pub(crate) fn not_a_function(item: &TokenStream, message: &str) -> syn::Error {
    let keyword = |input: syn::parse::ParseStream| {
        input.call(syn::Attribute::parse_outer)?;
        input.parse::<syn::Visibility>()?;
        let span = input.span();
        input.parse::<TokenStream>()?;
        Ok(span)
    };
    let span = syn::parse::Parser::parse2(keyword, item.clone()).unwrap_or_else(|_| Span::call_site());
    syn::Error::new(span, message)
}

/// How each key is written, for messages about a missing or malformed value.
fn usage(key: Symbol) -> &'static str {
    match key.0 {
        "depends_on" => "`depends_on = [build, lint]`",
        "when" => "`when = is_release`, naming a `fn(&Ctx) -> bool`",
        "id" => "`id = \"unit-test\"`",
        "blocked" => "`blocked` or `blocked = true`",
        "timeout" => "`timeout = \"10m\"`",
        "retries" => "`retries = 2`",
        "idempotent" => "`idempotent = false`",
        "allow_failure" => "`allow_failure` or `allow_failure = true`",
        "runs" => "`runs = on_failure` (or `on_success`, `always`)",
        _ => unreachable!("no usage for `{key}`"),
    }
}

fn parse_args(cx: &Ctxt, args: TokenStream) -> JobArgs {
    let mut depends_on = Attr::none(cx, DEPENDS_ON);
    let mut when = Attr::none(cx, WHEN);
    let mut id = Attr::none(cx, ID);
    let mut blocked = Attr::none(cx, BLOCKED);
    let mut timeout = Attr::none(cx, TIMEOUT);
    let mut retries = Attr::none(cx, RETRIES);
    let mut idempotent = Attr::none(cx, IDEMPOTENT);
    let mut allow_failure = Attr::none(cx, ALLOW_FAILURE);
    let mut runs = Attr::none(cx, RUNS);

    let parser = syn::meta::parser(|meta| {
        let key = meta.path.clone();
        let Some(&symbol) = KEYS.iter().find(|k| key.is_ident(k.0)) else {
            let name =
                key.get_ident().map(ToString::to_string).unwrap_or_else(|| quote!(#key).to_string().replace(' ', ""));
            let expected = KEYS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ");
            cx.error_spanned_by(&key, format!("unknown `#[job]` argument `{name}`; expected one of: {expected}"));
            // Skip the value so the remaining arguments are still checked.
            return skip_value(meta.input);
        };
        if !meta.input.peek(syn::Token![=]) {
            if key == BLOCKED {
                blocked.set(&key, true);
            } else if key == ALLOW_FAILURE {
                allow_failure.set(&key, true);
            } else {
                cx.error_spanned_by(&key, format!("`{symbol}` needs a value: {}", usage(symbol)));
                skip_value(meta.input)?;
            }
            return Ok(());
        }
        // Every accepted value is an expression; its shape is checked below, per key.
        let value: syn::Expr = meta.value()?.parse()?;
        let expected = |what: &str| format!("`{symbol}` takes {what}: {}", usage(symbol));
        if key == DEPENDS_ON {
            let syn::Expr::Array(array) = value else {
                cx.error_spanned_by(&value, expected("a list of #[job] functions, even for one job"));
                return Ok(());
            };
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
        } else if key == WHEN {
            match value {
                syn::Expr::Path(p) if p.qself.is_none() => when.set(&key, p.path),
                other => {
                    cx.error_spanned_by(other, "`when` names a function `fn(&Ctx) -> bool`, e.g. `when = is_release`")
                }
            }
        } else if key == ID {
            match string_literal(&value) {
                Some(lit) => match check_id(&lit.value()) {
                    Ok(()) => id.set(&key, lit.clone()),
                    Err(msg) => cx.error_spanned_by(lit, msg),
                },
                None => cx.error_spanned_by(&value, expected("a string")),
            }
        } else if key == BLOCKED {
            match bool_literal(&value) {
                Some(lit) => blocked.set(&key, lit.value),
                None => cx.error_spanned_by(&value, expected("no value or a `bool`")),
            }
        } else if key == TIMEOUT {
            match string_literal(&value) {
                Some(lit) => match parse_duration_ms(&lit.value()) {
                    Ok(ms) => timeout.set(&key, ms),
                    Err(msg) => cx.error_spanned_by(lit, msg),
                },
                None => cx.error_spanned_by(&value, expected("a duration string")),
            }
        } else if key == RETRIES {
            match &value {
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(lit), .. }) => match lit.base10_parse::<u32>() {
                    Ok(n) => retries.set(&key, n),
                    Err(_) => cx.error_spanned_by(lit, "`retries` is too large"),
                },
                other => cx.error_spanned_by(other, expected("a whole number")),
            }
        } else if key == ALLOW_FAILURE {
            match bool_literal(&value) {
                Some(lit) => allow_failure.set(&key, lit.value),
                None => cx.error_spanned_by(&value, expected("no value or a `bool`")),
            }
        } else if key == RUNS {
            let word = match &value {
                syn::Expr::Path(p) if p.qself.is_none() => p.path.get_ident().cloned(),
                _ => None,
            };
            let Some(word) = word else {
                cx.error_spanned_by(&value, expected("a word"));
                return Ok(());
            };
            match RUNS_VALUES.iter().find(|(name, _)| word == name) {
                Some((_, variant)) => runs.set(&key, *variant),
                None => {
                    let names = RUNS_VALUES.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ");
                    cx.error_spanned_by(&word, format!("unknown `runs` value `{word}`; expected one of: {names}"));
                }
            }
        } else if key == IDEMPOTENT {
            match bool_literal(&value) {
                Some(lit) => idempotent.set(&key, lit.clone()),
                None => cx.error_spanned_by(&value, expected("a `bool`")),
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
        idempotent: idempotent.get(),
        allow_failure: allow_failure.get().unwrap_or(false),
        runs: runs.get(),
    }
}

fn string_literal(value: &syn::Expr) -> Option<&syn::LitStr> {
    match value {
        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(lit), .. }) => Some(lit),
        _ => None,
    }
}

fn bool_literal(value: &syn::Expr) -> Option<&syn::LitBool> {
    match value {
        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Bool(lit), .. }) => Some(lit),
        _ => None,
    }
}

/// Skips an argument's value (`= expr`, `(...)`), up to the comma ending it.
fn skip_value(input: syn::parse::ParseStream) -> syn::Result<()> {
    if input.peek(syn::Token![=]) {
        input.parse::<syn::Token![=]>()?;
        input.parse::<syn::Expr>()?;
        return Ok(());
    }
    while !input.is_empty() && !input.peek(syn::Token![,]) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

/// A job id, checked by the one rule all sides share.
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    monkeyci_protocol::id::check(id).map_err(|err| err.to_string())
}

/// A `timeout`: a duration in the one syntax all sides share, in milliseconds, and not zero.
fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let ms = monkeyci_protocol::duration::parse(text).map_err(|err| err.to_string())?.as_millis();
    match u64::try_from(ms) {
        Ok(0) => Err(format!("timeout {text:?} is zero; leave `timeout` out for no limit")),
        Ok(ms) => Ok(ms),
        Err(_) => Err(format!("timeout {text:?} is too long")),
    }
}

fn check_signature(cx: &Ctxt, func: &syn::ItemFn) {
    let sig = &func.sig;
    check_not_generic(cx, sig, "#[job]");
    check_ctx_argument(cx, sig, "#[job]");
    if sig.asyncness.is_none() && matches!(sig.output, syn::ReturnType::Default) {
        cx.error_spanned_by(
            &sig.ident,
            "a #[job] that is not `async` must return `ContainerJob`; \
             make it `async fn` for an action job",
        );
    }
}

/// Jobs and pipelines are called by the runtime, which has no type arguments to give them.
pub(crate) fn check_not_generic(cx: &Ctxt, sig: &syn::Signature, what: &str) {
    let message = format!("a {what} function cannot be generic");
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(&sig.generics, message);
    } else if let Some(where_clause) = &sig.generics.where_clause {
        cx.error_spanned_by(where_clause, message);
    }
}

/// Both attributes take functions of one optional argument, the build context.
pub(crate) fn check_ctx_argument(cx: &Ctxt, sig: &syn::Signature, what: &str) {
    if sig.inputs.len() > 1 {
        cx.error_spanned_by(&sig.inputs, format!("a {what} function takes one argument, `ctx: &Ctx`"));
    }
    for input in &sig.inputs {
        match input {
            syn::FnArg::Receiver(recv) => {
                cx.error_spanned_by(recv, format!("a {what} function is a free function; it cannot take `self`"))
            }
            syn::FnArg::Typed(pat) => match &*pat.ty {
                syn::Type::Reference(r) if r.mutability.is_none() => {}
                syn::Type::Reference(_) => cx.error_spanned_by(
                    &pat.ty,
                    format!("a {what} function takes the context by shared reference: `ctx: &Ctx`"),
                ),
                _ => cx.error_spanned_by(
                    &pat.ty,
                    format!("a {what} function takes the context by reference: `ctx: &Ctx`"),
                ),
            },
        }
    }
}

/// The spans of the first and last tokens of `tokens`. Code whose first token has the first
/// span and whose last token has the last is reported by rustc under all of `tokens`.
pub(crate) fn span_range(tokens: &dyn ToTokens) -> (Span, Span) {
    let mut iter = tokens.to_token_stream().into_iter();
    let first = iter.next().map_or_else(Span::call_site, |t| t.span());
    let last = iter.last().map_or(first, |t| t.span());
    (first, last)
}

/// `&ctx` (`&*ctx` if `ctx` is already a reference), passing the context to the user's
/// function. Type errors about the argument land under the argument's declared type.
pub(crate) fn ctx_argument(sig: &syn::Signature, ctx_is_ref: bool) -> TokenStream {
    let (first, last) = match sig.inputs.first() {
        Some(syn::FnArg::Typed(pat)) => span_range(&pat.ty),
        _ => (Span::call_site(), Span::call_site()),
    };
    let borrow = if ctx_is_ref { quote_spanned!(first=> &*) } else { quote_spanned!(first=> &) };
    let ctx = quote_spanned!(last=> ctx);
    quote!(#borrow #ctx)
}

/// `callee(args)`, with the parentheses at `span`: rustc reports errors about the call from the
/// callee's first token to the closing parenthesis.
pub(crate) fn call_spanned(callee: TokenStream, args: TokenStream, span: Span) -> TokenStream {
    let mut args = proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, args);
    args.set_span(span);
    quote!(#callee #args)
}

/// The job's marker, its `JobMarker` impl and, if `register`, its registration.
fn generate(func: &syn::ItemFn, args: &JobArgs, register: bool) -> TokenStream {
    let name = &func.sig.ident;
    let vis = &func.vis;
    let private = quote!(::monkeyci_sdk::__private);

    let id = match &args.id {
        Some(lit) => lit.value(),
        None => name.to_string().trim_start_matches("r#").replace('_', "-"),
    };
    // The context is moved into the future, so it lives as long as the call borrowing it.
    let (ctx_param, call) = if func.sig.inputs.is_empty() {
        (quote!(_ctx), quote!(#name()))
    } else {
        let arg = ctx_argument(&func.sig, func.sig.asyncness.is_none());
        (quote!(ctx), quote!(#name(#arg)))
    };
    let (ret, (first, last)) = match &func.sig.output {
        syn::ReturnType::Type(_, ty) => (quote!(#ty), span_range(ty)),
        syn::ReturnType::Default => (quote!(()), (Span::call_site(), Span::call_site())),
    };
    // Both uses of the return type's trait are placed under the whole return type, so a wrong
    // return type is reported there, once (rustc merges the identical errors).
    let trait_path = if func.sig.asyncness.is_some() {
        quote_spanned!(first=> ::monkeyci_sdk::__private::ActionResult)
    } else {
        quote_spanned!(first=> ::monkeyci_sdk::__private::IntoContainerJob)
    };
    let qualified = |item: &str| {
        let open = quote_spanned!(first=> <);
        let item = syn::Ident::new(item, last);
        quote!(#open #ret as #trait_path>::#item)
    };
    let output_type = qualified("Output");
    let output_item = {
        let type_token = quote_spanned!(first=> type);
        let semi = quote_spanned!(last=> ;);
        quote!(#type_token Output = #output_type #semi)
    };
    let body = if func.sig.asyncness.is_some() {
        let into_output = call_spanned(qualified("into_output"), quote!(#call.await), last);
        // Normalizing the output type here repeats the impl's checks: same span, one error.
        let to_json = call_spanned(
            quote_spanned!(first=> ::monkeyci_sdk::__private::job_output_to_json::<#name>),
            into_output,
            last,
        );
        quote! {
            #private::JobBody::Action(|#ctx_param| ::std::boxed::Box::pin(async move { #to_json }))
        }
    } else {
        let into_container_job = call_spanned(qualified("into_container_job"), call, last);
        quote! {
            #private::JobBody::Container(|#ctx_param| #into_container_job)
        }
    };
    let deps = args.depends_on.iter().map(|path| quote_spanned!(path.span()=> #private::dependency::<#path>()));
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
    let allow_failure = args.allow_failure;
    let runs = syn::Ident::new(args.runs.unwrap_or("OnSuccess"), Span::call_site());
    let idempotent = args.idempotent.as_ref().is_none_or(|lit| lit.value);
    let timeout_ms = match args.timeout_ms {
        Some(ms) => quote!(::core::option::Option::Some(#ms)),
        None => quote!(::core::option::Option::None),
    };
    // The marker lives in the type namespace only, so the function keeps its name as a value
    // and local variables may share it. Declared at the function's name, so "defined here"
    // notes point there.
    let marker_doc = format!(
        "Names the job `{id}` declared by the function `{name}`: `depends_on = [{name}]`, `ctx.output::<{name}>()`."
    );
    let marker = quote_spanned! {name.span()=>
        #[doc = #marker_doc]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #name {}
    };

    let marker_impl = quote! {
        #[diagnostic::do_not_recommend]
        impl #private::JobMarker for #name {
            #output_item
            const ID: &'static str = #id;
        }

        #[diagnostic::do_not_recommend]
        impl #private::Dependency for #name {
            fn job_id() -> ::monkeyci_sdk::JobId {
                #private::job_dependency::<Self>()
            }
        }
    };
    let items = quote! {
        #func
        #marker
    };
    if !register {
        // The output type cannot be named for a generic job, nor for a container job without
        // a return type; other signature errors leave it valid.
        let sync_without_return = func.sig.asyncness.is_none() && matches!(func.sig.output, syn::ReturnType::Default);
        if func.sig.generics.params.is_empty() && !sync_without_return {
            return quote!(#items #marker_impl);
        }
        return items;
    }

    quote! {
        #items
        #marker_impl

        const _: () = {
            #private::inventory::submit! {
                #private::JobDef {
                    id: #id,
                    depends_on: || ::std::vec![#(#deps),*],
                    when: #when,
                    blocked: #blocked,
                    timeout_ms: #timeout_ms,
                    retries: #retries,
                    idempotent: #idempotent,
                    allow_failure: #allow_failure,
                    runs: ::monkeyci_sdk::Runs::#runs,
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
