"""Pages people read: the live dashboard and the self-contained HTML report, drawn from
`esr.observe.timeline` by one script (`static/charts.js`) with uPlot from the npm registry."""
