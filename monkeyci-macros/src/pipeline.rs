//! `#[pipeline]`: registers a function that computes jobs from the build context at run time.
//! The function itself is emitted unchanged, so tests can call it directly.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ctxt::Ctxt;
use crate::job::{check_ctx_argument, with_error};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let err = syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[pipeline] goes on a function: `#[pipeline] fn name(ctx: &Ctx) -> Vec<Job>`",
            );
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
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(&sig.generics, "a #[pipeline] function cannot be generic");
    }
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
        (quote!(ctx), quote!(#name(ctx)))
    };
    let into_jobs = quote_spanned!(sig.output.span()=> #private::IntoJobs::into_jobs(#call));
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
