"""What a run is asked to do: the experiment config and its presets (:mod:`configuration.config`)
and the scripts' flag parser generated from the declarations (:mod:`configuration.cli`)."""
