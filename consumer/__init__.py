"""The asyncio stream consumer: read, decode, route, store, publish, acknowledge."""
