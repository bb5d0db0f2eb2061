//! `--chart DIR`: reads a checkout of the matrix-stack chart (its Chart.yaml and
//! values.schema.json) and compiles the schema, before the export reads anything else.

use std::path::Path;

use anyhow::{Result, bail};

use crate::export::ess::chart_schema::{self, Validator};

/// The chart's compiled values schema, or one line saying what is wrong with DIR.
pub fn load(dir: &Path) -> Result<Validator> {
    let d = dir.display();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("--chart {d}: not a directory (a checkout of the chart, e.g. ess-helm/charts/matrix-stack)"),
        Err(e) => bail!("--chart {d}: {e} (a checkout of the chart, e.g. ess-helm/charts/matrix-stack)"),
    }
    if !dir.join("Chart.yaml").is_file() {
        bail!("--chart {d}: no Chart.yaml, so not a Helm chart (point it at charts/matrix-stack)");
    }
    let p = dir.join("values.schema.json");
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{}: missing; this chart has no values schema to check the export against", p.display())
        }
        Err(e) => bail!("{}: {e}", p.display()),
    };
    let schema: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}:{}:{}: {e}", p.display(), e.line(), e.column()))?;
    chart_schema::compile(&schema).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_chart_with_a_schema() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("chart");
        let err = |dir: &Path| load(dir).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(&dir).contains("No such file"), "{}", err(&dir));
        std::fs::write(&dir, "").unwrap();
        assert!(err(&dir).contains("not a directory"), "{}", err(&dir));
        std::fs::remove_file(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        assert!(err(&dir).contains("no Chart.yaml"), "{}", err(&dir));
        std::fs::write(dir.join("Chart.yaml"), "name: matrix-stack\n").unwrap();
        assert!(
            err(&dir)
                .ends_with("values.schema.json: missing; this chart has no values schema to check the export against"),
            "{}",
            err(&dir)
        );
        std::fs::write(dir.join("values.schema.json"), "{\n  \"type\": \"object\",\n}\n").unwrap();
        assert!(err(&dir).contains("values.schema.json:3:1: "), "{}", err(&dir));
        std::fs::write(dir.join("values.schema.json"), "{\"type\": 5}").unwrap();
        assert!(err(&dir).contains("not a valid JSON Schema"), "{}", err(&dir));
        std::fs::write(dir.join("values.schema.json"), "{\"type\": \"object\"}").unwrap();
        assert!(load(&dir).is_ok());
    }

    #[test]
    fn loads_the_fixture_chart() {
        load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ess-chart")).unwrap();
    }
}
