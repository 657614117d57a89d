"""What is done to a picture and its labels after the nearest-centre assignment:
dithering, clean label maps, indexed pictures. Imports only `core`."""
