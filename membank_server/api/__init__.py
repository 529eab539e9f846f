"""The HTTP edge: Litestar app, controllers, schemas and the error table."""
