"""Dashboard: latency vs published top-1 per device class with the Pareto frontier, rendered on
the server as SVG; assets ship in the package (no CDN)."""
