"""chatctl cluster: storage, server replicas, groups and clients of one cluster, supervised as one.

Modules, in the order a cluster comes up:

- config.py: the cluster file (chatroom.toml) into frozen dataclasses; one line per mistake.
- home.py: the state directory `$CHATROOM_HOME/clusters/<name>/` (an ordinary chatroom state
  directory: admin.token, tokens/, clients/<name>.log) and the supervisor's files in it.
- daemon.py: the supervisor process (lock, control socket, signals); formation.py: what it runs
  and in which order; kinds.py: storage, server and client processes; supervised.py: the state
  machine of each (restart policy from admin_cli/restarts.py).
- control.py: the control plane, chatroom.cluster.v1.ClusterService on supervisor.sock;
  remote.py: chatctl's blocking client of it (`Supervisor`); cli.py: the commands.
- logs.py, events.py: the merged log and the events file; delivery.py: Admin API calls.
- verify.py: whether every client showed each note of its group once, in order, none missing;
  chaos.py: seeded kills of replicas and clients under load, then verify.

For commands built on a running cluster (verify, chaos), `remote.Supervisor(name, ClusterHome.of(name))`
gives, through `status()` (GetStatus): every process with name, kind, state, pid, restarts,
uptime, address (servers), member and group (clients) and `log_path` (a client's console log,
the one `--resume-log` reads); `servers`, every replica's address as CHATROOM_SERVER takes them;
`home` (CHATROOM_HOME for chatctl's admin and send commands), `admin_token_path`,
`events_path` and `log_path` (merged). `kill(name, signal)` signals a process as an outsider
would (0: SIGKILL) and its restart policy applies; `restart(names)`, `scale(counts)`,
`rollout_restart()` and `stop()` do what the commands of the same names do. Events of kind
"process" (started, ready, exited with `code`, restarting with `delay_s`, failed, stopped) and
"delivery" (subscribed with `server`, caught up with `head_seq`) are JSON lines in events_path.
"""
