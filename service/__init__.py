"""Everything with state: API, jobs, storage, dispatch, dashboard, CLI."""
