"""Dashboard: latency vs top-1 per device class (measured, published, predicted and the user's own
points), Pareto fronts, ranks across devices and a page per spec; drawn with Plotly from the
installed ``plotly`` package (no CDN). ``report`` writes the same charts as one offline file."""
