"""chatctl, the command line of chatroom."""
