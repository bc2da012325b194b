"""The plugin host: implements what the plugin contract (gateway.plugin) promises."""
