"""The runtime shared by web processes and engine workers: Redis keys, the
embedded Redis, the simulation driver and the engine worker. Nothing here
renders pages; nothing here touches the database."""
