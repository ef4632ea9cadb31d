"""The embedded stack: the emulators (moto server for AWS, our Graph emulator), the demo and the local Ray host."""
