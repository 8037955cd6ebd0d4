"""Study: what the paper claims, judged on evaluated runs, and what a study costs.

`view` (the evaluated study's data, one frozen object), `claims` (each claim judged by one function),
`report` (every figure, from saved arrays), `pipeline` (the `study` command: train, evaluate, judge,
draw), `power` and `plan` (seeds, pairs and time a study needs), `bench` (training throughput) and
`publish` (a run packed for others). May import: every layer below; nothing imports it but the CLI.
"""
