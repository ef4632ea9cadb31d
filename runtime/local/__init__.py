"""The embedded stack: emulators (moto server for AWS, our Graph emulator) and their bootstrap."""
