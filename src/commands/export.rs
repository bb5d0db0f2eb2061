//! `masctl export ess`: parse, export, print the report and what was written.

use anyhow::Result;

use crate::cli::{ExportEss, PostgresChoice};
use crate::context::ConfiguredContext;
use crate::export::ess::report;
use crate::ops::export_ess::{self, Options};

pub async fn ess(ctx: &ConfiguredContext, a: ExportEss) -> Result<()> {
    let o = Options {
        out: a.out,
        release: a.release,
        namespace: a.namespace,
        external_postgres: a.postgres == PostgresChoice::External,
        cert_issuer: a.cert_issuer,
        mas_host: a.mas_host,
        chart: a.chart,
    };
    if a.json {
        // stdout is the JSON alone; the jobs' output goes to stderr.
        crate::jobs::output_to_stderr();
    }
    let done = export_ess::export(ctx, &o).await?;
    let files: Vec<String> = done.files.iter().map(|p| p.display().to_string()).collect();
    if a.json {
        let v = serde_json::json!({
            "out": done.out, "files": files, "media_files": done.media_files,
            "report": report::to_json(&done.report),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for f in &files {
        println!("wrote {f}");
    }
    println!("{} media files archived", done.media_files);
    if !done.report.is_empty() {
        println!("\nWhat does not carry over:");
        print!("{}", report::to_text(&done.report));
    }
    println!("\nNext: {}/RUNBOOK.md", done.out.display());
    Ok(())
}
