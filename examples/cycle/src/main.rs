//! A dependency cycle is refused before anything runs.
//!
//! `a` depends on `b`, `b` on `c` and `c` on `a`, so none of them can ever start. Planning
//! finds the cycle and names it; the build ends with that error and no job runs. (This
//! pipeline is broken on purpose.)

use monkeyci_sdk::prelude::*;

/// Says which job it is.
fn noop(id: &'static str) -> Job {
    Job::action(id, move |ctx: Ctx| async move {
        ctx.log(format!("{id} ran"));
        Ok(())
    })
}

/// `a` → `b` → `c` → `a`, where `x → y` means "x depends on y".
#[pipeline]
fn circle(_ctx: &Ctx) -> Vec<Job> {
    vec![noop("a").depends_on(["b"]), noop("b").depends_on(["c"]), noop("c").depends_on(["a"])]
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_sdk::PlanError;
    use monkeyci_sdk::testing::TestCtx;

    const MESSAGE: &str = "dependency cycle: a -> b -> c -> a (each job depends on the next)";

    #[test]
    fn planning_names_the_cycle() {
        let err = TestCtx::new().plan().unwrap_err();
        assert_eq!(err.to_string(), MESSAGE);
        let PlanError::Cycle { jobs } = &err else { panic!("not a cycle error: {err}") };
        assert_eq!(jobs, &["a", "b", "c", "a"]);
    }

    #[test]
    fn nothing_runs() {
        let err = TestCtx::new().run().unwrap_err();
        assert_eq!(err.to_string(), MESSAGE);
    }

    #[test]
    fn the_same_jobs_without_the_last_edge_plan_in_order() {
        let jobs = vec![noop("a").depends_on(["b"]), noop("b").depends_on(["c"]), noop("c")];
        assert_eq!(TestCtx::new().plan_jobs(jobs).unwrap().job_ids(), ["c", "b", "a"]);
    }
}
