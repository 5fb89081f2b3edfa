from gitops.cli import main

main(prog_name="gitops")   # usage lines and shell completion say `gitops`, not `python -m`
