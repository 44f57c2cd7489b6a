"""The application: command line, execution of cases, sweeps. Only this layer imports solvers and postprocess."""
