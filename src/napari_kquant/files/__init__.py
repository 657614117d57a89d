"""Files and the command line: checked image reads, planned writes that lose nothing, the
bundled photograph, and `kquant`. Imports the public functions and every layer below."""
