"""Other stream processors running creditline's core, measured beside it by ``make bench``."""

#: Environment of the Quix Streams peer: its consumer group (the bench reads its committed
#: offsets to know when it is done) and its state directory.
QUIX_GROUP_ENV = "QUIX_PEER_GROUP"
QUIX_STATE_DIR_ENV = "QUIX_PEER_STATE_DIR"
