//! `make demo` must keep working: it runs the whole system in-process and walks through it.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_to_the_end() -> anyhow::Result<()> {
    sunshine::demo::run().await
}
