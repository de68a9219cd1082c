PLUGINS: list = []
