package main

// Detailed help for each command: kong prints a command's Help() under its
// one-line summary in `walprobe CMD --help`. Lines indented by spaces are
// kept as they are (go/doc formatting), so every example is one
// copy-pasteable block. docs_test.go checks that each command has one.

func (*runCmd) Help() string {
	return `Writes a heartbeat on the primary every --interval and times, on every target, when it becomes visible. Serves /metrics, /v1/state, /v1/history, /healthz on --listen.

Examples:

    # a primary, a standby, a logical subscriber and a pgbouncer endpoint
    walprobe run --primary 'postgres://walprobe@db1/app' \
        --standby replica1='postgres://walprobe@db2/app' \
        --subscriber reporting='postgres://walprobe@db3/app' \
        --endpoint readers='postgres://walprobe@pgbouncer:6432/app'

    # everything from a YAML file (keys are flag names; flags and WALPROBE_* win)
    walprobe --config /etc/walprobe/walprobe.yaml run

    # DSNs from the environment, OTLP to a collector, beats every 250 ms
    WALPROBE_PRIMARY='host=db1 dbname=app user=walprobe' \
        walprobe run --interval 250ms --otlp-endpoint http://otel-collector:4318`
}

func (*checkCmd) Help() string {
	return `Writes beats until every target has shown one (or --timeout passes), prints one Nagios/Icinga status line with perfdata and exits 0 OK, 1 WARNING, 2 CRITICAL or 3 UNKNOWN.

Examples:

    # Nagios/Icinga: warn at 1 s, critical at 5 s
    walprobe check --primary 'postgres://walprobe@db1/app' \
        --standby replica1='postgres://walprobe@db2/app' --warning 1s --critical 5s

    # pgpool-II replication_delay_source_cmd: one delay in ms per standby, -1 when down
    walprobe check --format pgpool --primary 'host=db1 dbname=app user=walprobe' \
        --standby db2='host=db2 dbname=app user=walprobe'`
}

func (*setupCmd) Help() string {
	return `Creates the walprobe schema, the heartbeat table, the walprobe_heartbeat publication and the probe role's grants. Run it once as an administrator; walprobe run itself needs only the grants.

Examples:

    # print the SQL for a DBA to review and run
    walprobe setup --print-sql --role walprobe

    # run it on the primary, also adding the table to the publication your subscribers use
    walprobe setup --primary 'postgres://admin@db1/app' --role walprobe --user-publication app_pub

    # on a logical subscriber: only the table and grants
    walprobe setup --primary 'postgres://admin@db3/app' --role walprobe --subscriber-only`
}

func (*demoCmd) Help() string {
	return `Starts a throwaway PostgreSQL primary, physical standby, logical subscriber (and pgbouncer when installed) on 127.0.0.1, runs the probe on them and draws a live table of true against classic lag. Keys: c cut the standby off, p pause replay, i idle the primary, s stall the subscriber, q quit. Everything it started is removed on the way out.

Examples:

    # run until q or Ctrl-C
    walprobe demo

    # beats every 200 ms, stop by itself after 2 minutes
    walprobe demo --interval 200ms --duration 2m`
}

func (*versionCmd) Help() string {
	return `Examples:

    walprobe version`
}

func (*completionCmd) Help() string {
	return `Prints the script that makes the shell complete walprobe's commands, flags and values. Completion is answered by this binary, so it always matches its flags.

Examples:

    # bash, in ~/.bashrc
    source <(walprobe completion bash)

    # zsh, in ~/.zshrc
    source <(walprobe completion zsh)

    # fish, in ~/.config/fish/config.fish
    walprobe completion fish | source`
}
