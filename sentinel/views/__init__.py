"""The read side between the store and HTTP: runs the pure queries of `sentinel.queries`
through a `Reader` and puts their answers together. Used by the read API and the pages alike,
so a page shows exactly what the API returns."""
