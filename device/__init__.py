"""digitcam device side: read the numbers a camera sees and publish them over MQTT.

Never imports TensorFlow; it runs on a Raspberry Pi with ai-edge-litert or tflite-runtime.
"""

import os

__version__ = "0.1.0"

# OpenCV allocates a decoded image before it checks its size (up to 2^30 pixels by default), so a 60 KB PNG
# claiming 30000x30000 pixels would take ~1 GB: more than a Pi has. Its limit is read once, when cv2 is
# imported, so it is set here, before any device module imports cv2 (images.MAX_PIXELS is the same figure).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "64000000")
