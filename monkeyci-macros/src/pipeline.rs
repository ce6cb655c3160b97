//! `#[pipeline]`: registers a function that computes jobs from the build context at run time.
//! The function itself is emitted unchanged, so tests can call it directly.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

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
    if !args.is_empty() {
        cx.error_spanned_by(&args, "#[pipeline] takes no arguments");
    }
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
    if let Err(err) = cx.check() {
        return with_error(quote!(#func), err);
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
    quote! {
        #func

        const _: () = {
            #private::inventory::submit! {
                #private::PipelineDef {
                    name: #label,
                    jobs: |#ctx_param| #into_jobs,
                    location: ::core::concat!(::core::file!(), ":", ::core::line!()),
                }
            }
        };
    }
}
