"""The suite's own small distiller: recorders, connectors, DistillationModel, schedule hook."""
