//! `--metrics FILE`: the vocabulary in Prometheus text format, written at exit.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flowscope::obs;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub(crate) struct MetricsFile {
    path: PathBuf,
    handle: PrometheusHandle,
}

impl MetricsFile {
    /// Install a Prometheus recorder with histogram buckets suited to each metric.
    pub(crate) fn install(path: &Path) -> Result<Self> {
        let bytes =
            [64.0, 512.0, 4096.0, 32768.0, 262_144.0, 1_048_576.0, 8_388_608.0, 67_108_864.0, 1e9];
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(obs::METRIC_FLOW_DURATION_SECONDS.into()),
                &[0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0],
            )?
            .set_buckets_for_metric(
                Matcher::Full(obs::METRIC_FLOW_PACKETS.into()),
                &[1.0, 2.0, 4.0, 10.0, 30.0, 100.0, 1e3, 1e4, 1e5, 1e6],
            )?
            .set_buckets_for_metric(Matcher::Full(obs::METRIC_FLOW_BYTES.into()), &bytes)?
            .set_buckets_for_metric(
                Matcher::Full(obs::METRIC_REASSEMBLER_HIGH_WATERMARK.into()),
                &bytes,
            )?
            .install_recorder()
            .context("cannot install the metrics recorder")?;
        obs::describe();
        Ok(MetricsFile { path: path.to_path_buf(), handle })
    }

    /// Render and write the file.
    pub(crate) fn write(self) -> Result<()> {
        std::fs::write(&self.path, self.handle.render())
            .with_context(|| format!("{}: cannot write the metrics file", self.path.display()))
    }
}
