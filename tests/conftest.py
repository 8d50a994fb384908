pytest_plugins = ["azurite", "iris"]
