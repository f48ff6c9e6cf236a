"""Built-in plugins, each registered through the ``forgeml`` entry point group like a third-party one."""
