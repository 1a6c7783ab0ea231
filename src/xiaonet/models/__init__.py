"""The networks: the XiaoNet student, its named presets and shipped weights, the SeisBench teachers."""
