"""`sentinel doctor`: is this installation wired up? One line per check, with what to do.

`report` holds the results and the pure decisions (topics, migrations, the Kubernetes
permissions the components need); `probes` asks the outside systems, changing nothing.
"""
