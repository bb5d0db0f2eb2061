//! `masctl image lock | build | load | pull | list`.

use anyhow::Result;

use crate::cli::ImageCommand;
use crate::context::Context;
use crate::docker::Engine;
use crate::ops::image::{self, ImageSource, Row};
use crate::ui;

pub async fn run(ctx: &Context, cmd: ImageCommand) -> Result<()> {
    let source = ImageSource::of(ctx);
    match cmd {
        ImageCommand::Lock { names, update } => names.iter().try_for_each(|n| source.lock(n, update)),
        ImageCommand::Build { names, check, inputs } => {
            let mut b = source.builder(inputs);
            for n in &names {
                println!("{n} {}", source.build(&mut b, n, check)?);
            }
            Ok(())
        }
        ImageCommand::Load { names, inputs } => {
            let engine = Engine::connect().await?;
            let mut b = source.builder(inputs);
            for n in &names {
                println!("{n} {}", source.load(&mut b, &engine, n).await?);
            }
            Ok(())
        }
        ImageCommand::Pull { reference } => {
            let (pinned, id) = image::pull(&reference).await?;
            println!("{pinned} {id}");
            Ok(())
        }
        ImageCommand::List { json } => print_list(&source.list().await?, json),
    }
}

fn print_list(rows: &[Row], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
        return Ok(());
    }
    println!("{:<12} {:<9} {:<20} {:>10}  STATE", "NAME", "KIND", "ID", "SIZE");
    for r in rows {
        let id =
            r.id.as_deref()
                .map_or("-".to_string(), |i| i.trim_start_matches("sha256:")[..12.min(i.len() - 7)].to_string());
        let size = r.size.map_or("-".into(), ui::human_bytes);
        let state = match (r.archive.is_some() || r.kind == "upstream", r.loaded) {
            (_, true) => "loaded",
            (true, false) if r.kind == "recipe" => "built",
            _ => "not built",
        };
        println!("{:<12} {:<9} {:<20} {:>10}  {state}", r.name, r.kind, id, size);
    }
    Ok(())
}
