"""HTTP endpoints of the emulator, one module per API area (status and UPO live in ``responses``)."""
