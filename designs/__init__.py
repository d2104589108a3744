"""The built-in designs, one file each, installed as `hwgen.designs`: ``hwgen plan lenet_ws4`` (or
`hwgen.load_design`) finds ``<name>.py`` here, from a checkout or an installed wheel alike. A design file
defines ``design = hwgen.Design(...)``; importing this package loads none of them."""
