"""chatctl, the command line of chatroom."""

import os

# gRPC's own C-core log lines would break the one-line errors chatctl prints;
# chatctl reports failures itself. GRPC_VERBOSITY=error brings them back.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
