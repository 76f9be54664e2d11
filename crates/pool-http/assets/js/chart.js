// The request trend chart: uPlot (vendored), stacked-looking bars drawn as three series with
// the theme's colours, resized with its box.

import uPlot from '../vendor/uplot-1.6.32/uPlot.esm.js';

function color(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

export function trendChart(box, { labels, points, granularity }) {
  const xs = points.map((p) => new Date(p.at).getTime() / 1000);
  const data = [xs, points.map((p) => p.successCount), points.map((p) => p.clientErrorCount), points.map((p) => p.failureCount)];
  const width = Math.max(280, box.clientWidth || 600);
  const text = color('--muted');
  const grid = color('--border');
  const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  const series = (label, stroke) => ({ label, stroke, width: 2, fill: `${stroke}22`, points: { show: false } });
  const plot = new uPlot({
    width,
    height: 260,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    axes: [granularity === 'day' ? { ...axis, values: '{MM}-{DD}' } : axis, { ...axis, size: 50 }],
    series: [{}, series(labels[0], color('--ok')), series(labels[1], color('--warn')), series(labels[2], color('--bad'))],
  }, data, box);
  const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(280, box.clientWidth), height: 260 }));
  resize.observe(box);
  return { destroy() { resize.disconnect(); plot.destroy(); } };
}
