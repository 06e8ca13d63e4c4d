"""digitcam device side: read the numbers a camera sees and publish them over MQTT.

Never imports TensorFlow; it runs on a Raspberry Pi with ai-edge-litert or tflite-runtime.
"""

__version__ = "0.1.0"
