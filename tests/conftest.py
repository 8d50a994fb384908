pytest_plugins = ["support.azurite", "support.iris", "support.markers", "pytester"]
