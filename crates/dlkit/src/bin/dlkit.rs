//! The `dlkit` command line: headless training, summaries, benchmarks and data fetching.
fn main() {}
