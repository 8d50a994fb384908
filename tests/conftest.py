pytest_plugins = ["azurite"]
