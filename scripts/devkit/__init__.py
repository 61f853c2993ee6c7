"""Local-development kit shared by the demo, the benchmarks and the tests: the callable-protocol
client for the emulator (``emulator``) and the loopback fakes of GitHub, a website and Brave
Search (``fakes``, on fixed ports in ``services``)."""
