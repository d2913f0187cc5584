"""Recording fakes of Google client libraries, for the adapters that no emulator covers."""
