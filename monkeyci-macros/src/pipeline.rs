//! `#[pipeline]`: registers a function that computes jobs from the build context at run time,
//! and generates its marker type, which names it in `depends_on` and, with `output = T`, says
//! what its jobs return. The function itself is emitted unchanged, so tests can call it directly.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::attr::{Attr, OUTPUT, Symbol};
use crate::ctxt::Ctxt;
use crate::job::{
    call_spanned, check_ctx_argument, check_not_generic, ctx_argument, not_a_function, span_range, with_error,
};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let err =
                not_a_function(&item, "#[pipeline] goes on a function: `#[pipeline] fn name(ctx: &Ctx) -> Vec<Job>`");
            return with_error(item, err);
        }
    };
    let cx = Ctxt::new();
    let output = parse_args(&cx, args);
    let sig = &func.sig;
    if let Some(asyncness) = &sig.asyncness {
        cx.error_spanned_by(
            asyncness,
            "a #[pipeline] function computes jobs and must not be `async`; \
             put async work in an action job",
        );
    }
    check_not_generic(&cx, sig, "#[pipeline]");
    check_ctx_argument(&cx, sig, "#[pipeline]");
    if matches!(sig.output, syn::ReturnType::Default) {
        cx.error_spanned_by(&sig.ident, "a #[pipeline] function returns its jobs: `-> Vec<Job>`");
    }
    let failed = cx.check().err();
    let marker = marker(&func, output.as_ref());
    if let Some(err) = failed {
        return with_error(quote!(#func #marker), err);
    }

    let name = &sig.ident;
    let private = quote!(::monkeyci_sdk::__private);
    let (ctx_param, call) = if sig.inputs.is_empty() {
        (quote!(_ctx), quote!(#name()))
    } else {
        let arg = ctx_argument(sig, true);
        (quote!(ctx), quote!(#name(#arg)))
    };
    // Placed under the whole return type, where a wrong one is reported.
    let (first, last) = match &sig.output {
        syn::ReturnType::Type(_, ty) => span_range(ty),
        syn::ReturnType::Default => unreachable!("checked above"),
    };
    // rustc reports a wrong return type at the argument of `into_jobs`: `identity` gives that
    // argument the extent of the return type.
    let returned = call_spanned(quote_spanned!(first=> ::core::convert::identity), call, last);
    let into_jobs =
        call_spanned(quote_spanned!(first=> ::monkeyci_sdk::__private::IntoJobs::into_jobs), returned, last);
    let label = name.to_string();
    let output_type = match &output {
        Some(ty) => quote_spanned!(ty.span()=> ::core::option::Option::Some(#private::output_type::<#ty>)),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        #func
        #marker

        const _: () = {
            #private::inventory::submit! {
                #private::PipelineDef {
                    name: #label,
                    key: <#name as #private::PipelineMarker>::KEY,
                    output: #output_type,
                    jobs: |#ctx_param| #into_jobs,
                    location: ::core::concat!(::core::file!(), ":", ::core::line!()),
                }
            }
        };
    }
}

const KEYS: &[Symbol] = &[OUTPUT];

/// `output = T`, the type every job of the pipeline returns, if given.
fn parse_args(cx: &Ctxt, args: TokenStream) -> Option<syn::Type> {
    let mut output = Attr::none(cx, OUTPUT);
    let parser = syn::meta::parser(|meta| {
        let key = meta.path.clone();
        if !KEYS.iter().any(|k| key == *k) {
            let name = quote!(#key).to_string().replace(' ', "");
            let expected = KEYS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ");
            cx.error_spanned_by(&key, format!("unknown `#[pipeline]` argument `{name}`; expected one of: {expected}"));
            if meta.input.peek(syn::Token![=]) {
                meta.input.parse::<syn::Token![=]>()?;
                meta.input.parse::<syn::Expr>()?;
            }
            return Ok(());
        }
        if !meta.input.peek(syn::Token![=]) {
            cx.error_spanned_by(&key, "`output` needs a type: `output = T`, what every job of the pipeline returns");
            return Ok(());
        }
        let ty: syn::Type = meta.value()?.parse()?;
        output.set(&key, ty);
        Ok(())
    });
    if let Err(err) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(err);
    }
    output.get()
}

/// The pipeline's marker: a type of the function's name naming it in `depends_on = [name]`,
/// `JobId::all_of::<name>()` and, with `output = T`, `ctx.output_of::<name>(id)`.
fn marker(func: &syn::ItemFn, output: Option<&syn::Type>) -> TokenStream {
    let name = &func.sig.ident;
    let vis = &func.vis;
    let private = quote!(::monkeyci_sdk::__private);
    let label = name.to_string();
    let doc = format!("Names the `#[pipeline]` `{label}`: `depends_on = [{label}]` depends on every job it makes.");
    let marker = quote_spanned! {name.span()=>
        #[doc = #doc]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #name {}
    };
    // The bound on `Output` is checked under the type the user wrote.
    let output_impl = output.map(|ty| {
        let output = quote_spanned!(ty.span()=> type Output = #ty;);
        quote! {
            impl ::monkeyci_sdk::PipelineOutput for #name {
                #output
            }
        }
    });
    quote! {
        #marker

        #[diagnostic::do_not_recommend]
        impl #private::PipelineMarker for #name {
            const NAME: &'static str = #label;
            const KEY: &'static str = ::core::concat!(::core::module_path!(), "::", #label);
        }

        #[diagnostic::do_not_recommend]
        impl #private::Dependency for #name {
            fn job_id() -> ::monkeyci_sdk::JobId {
                #private::pipeline_dependency::<Self>()
            }
        }

        #output_impl
    }
}
