"""The chatroom server: gRPC servicers, the delivery core and storage backends."""
