"""The delivery core; see chatroom.py for the delivery model. Knows nothing of gRPC."""
